variable "name" {
  description = "Cluster name: prefixes AWS resource names and is Shale's cluster.name (the etcd key prefix)."
  type        = string
  default     = "shale"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,32}$", var.name))
    error_message = "name must be 1-32 characters of [A-Za-z0-9._-]."
  }
}

variable "vpc_id" {
  description = "VPC the instances run in."
  type        = string
}

variable "broker_subnet_ids" {
  description = "Private subnets for brokers, ideally one per availability zone; brokers are spread over them round-robin and use the zone as their rack."
  type        = list(string)
  validation {
    condition     = length(var.broker_subnet_ids) >= 1
    error_message = "broker_subnet_ids needs at least one subnet."
  }
}

variable "etcd_subnet_ids" {
  description = "Exactly three private subnets (one per zone) for the three etcd members."
  type        = list(string)
  validation {
    condition     = length(var.etcd_subnet_ids) == 3
    error_message = "etcd_subnet_ids must list exactly three subnets, one per etcd member."
  }
}

variable "etcd_host_number" {
  description = "Host number of each etcd member's fixed private IP inside its subnet (cidrhost), so brokers and peers know the addresses before boot."
  type        = number
  default     = 10
  validation {
    condition     = var.etcd_host_number >= 4
    error_message = "etcd_host_number must be at least 4 (AWS reserves the first four addresses of a subnet)."
  }
}

variable "client_cidrs" {
  description = "CIDR blocks allowed to reach the brokers' gRPC and Kafka ports (producers, consumers, admin CLI)."
  type        = list(string)
  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "client_cidrs must be valid CIDR blocks, and not 0.0.0.0/0: brokers belong on a private network, even with tls_enabled."
  }
}

variable "monitoring_cidrs" {
  description = "CIDR blocks allowed to scrape the admin HTTP port (/metrics, /healthz, /readyz)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.monitoring_cidrs : can(cidrhost(c, 0))])
    error_message = "monitoring_cidrs must be valid CIDR blocks."
  }
}

variable "broker_count" {
  description = "Number of brokers (3 or more for replication factor 3)."
  type        = number
  default     = 3
  validation {
    condition     = var.broker_count >= 1 && var.broker_count <= 100
    error_message = "broker_count must be between 1 and 100."
  }
}

variable "broker_instance_type" {
  description = "Instance type of the brokers."
  type        = string
  default     = "m6i.xlarge"
}

variable "etcd_instance_type" {
  description = "Instance type of the etcd members."
  type        = string
  default     = "t3.medium"
}

variable "data_volume_gb" {
  description = "Size of each broker's data volume (the local tail; history is in the bucket)."
  type        = number
  default     = 200
  validation {
    condition     = var.data_volume_gb >= 10
    error_message = "data_volume_gb must be at least 10."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of each gp3 data volume."
  type        = number
  default     = 6000
  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 16000
    error_message = "data_volume_iops must be between 3000 and 16000 (gp3)."
  }
}

variable "shale_download_url" {
  description = "HTTPS URL of a tar.gz holding the Linux x86_64 `shale` binary at its root."
  type        = string
  validation {
    condition     = startswith(var.shale_download_url, "https://")
    error_message = "shale_download_url must be an https:// URL."
  }
}

variable "shale_sha256" {
  description = "SHA-256 of the tarball at shale_download_url; the instance refuses a download that does not match."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.shale_sha256))
    error_message = "shale_sha256 must be 64 lowercase hex digits."
  }
}

variable "bucket_name" {
  description = "S3 bucket for tiered segments (created by this module)."
  type        = string
}

variable "bucket_prefix" {
  description = "Key prefix of this cluster in the bucket."
  type        = string
  default     = "shale"
}

variable "kms_key_arn" {
  description = "KMS key for bucket and volume encryption; null uses the AWS-managed keys."
  type        = string
  default     = null
}

variable "ami_id" {
  description = "AMI for every instance; null picks the latest official Debian 12 (amd64)."
  type        = string
  default     = null
}

variable "ssh_key_name" {
  description = "EC2 key pair for SSH (null: none; use SSM Session Manager)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "tls_enabled" {
  description = "Serve TLS (clients and brokers) with certificates the operator's PKI agent (Vault agent, step-ca, ...) keeps in tls_dir as tls.crt, tls.key and ca.crt, each broker's valid for its private IP; renewed files are picked up without a restart. Also requires authentication and turns ACLs on. Private keys never pass through Terraform state or user data."
  type        = bool
  default     = false
}

variable "tls_dir" {
  description = "Directory holding tls.crt, tls.key and ca.crt on every broker (with tls_enabled)."
  type        = string
  default     = "/etc/shale/tls"
  validation {
    condition     = startswith(var.tls_dir, "/")
    error_message = "tls_dir must be an absolute path."
  }
}

variable "broker_principal" {
  description = "The principal the brokers' certificates map to (their subject common name, as User:<CN>)."
  type        = string
  default     = "User:broker"
}

variable "acl_super_users" {
  description = "Principals allowed everything (with tls_enabled), e.g. [\"User:admin\"]."
  type        = list(string)
  default     = []
}

variable "auth_jwt_issuer" {
  description = "OpenID Connect issuer URL whose JWTs clients may present as bearer tokens (with tls_enabled); empty for none."
  type        = string
  default     = ""
  validation {
    condition     = var.auth_jwt_issuer == "" || startswith(var.auth_jwt_issuer, "https://")
    error_message = "auth_jwt_issuer must be an https:// URL (or empty)."
  }
}

variable "auth_jwt_audience" {
  description = "The audience those JWTs must carry."
  type        = string
  default     = "shale"
}
