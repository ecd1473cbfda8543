variable "name" {
  description = "Cluster name: prefixes AWS resource names."
  type        = string
  default     = "shale"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,32}$", var.name))
    error_message = "name must be 1-32 characters of [A-Za-z0-9._-]."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the brokers (and of the bundled etcd)."
  type        = string
  default     = "shale"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace must be a DNS label: lowercase letters, digits and '-', at most 63."
  }
}

variable "kustomize_path" {
  description = "Path of the Kustomize overlay to apply, e.g. the repository's deploy/k8s/overlays/bundled-etcd."
  type        = string
}

variable "image" {
  description = "Broker image, repository:tag or repository@digest."
  type        = string
  default     = "ghcr.io/shale-dev/shale:0.1.0"
  validation {
    condition     = can(regex("^[^\\s]+(:[^\\s]+|@sha256:[0-9a-f]{64})$", var.image))
    error_message = "image must carry a tag or a digest."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "oidc_provider_url" {
  description = "Issuer URL of that provider without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC...)."
  type        = string
  validation {
    condition     = !startswith(var.oidc_provider_url, "https://")
    error_message = "oidc_provider_url is given without the https:// scheme."
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
  description = "KMS key for the bucket; null uses aws/s3."
  type        = string
  default     = null
}

variable "etcd_endpoints" {
  description = "etcd client URLs; empty uses the bundled etcd of the overlay (etcd-N.etcd-headless)."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.etcd_endpoints : can(regex("^https?://", e))])
    error_message = "etcd_endpoints must be http:// or https:// URLs."
  }
}

variable "replicas" {
  description = "Number of brokers."
  type        = number
  default     = 3
  validation {
    condition     = var.replicas >= 1
    error_message = "replicas must be at least 1."
  }
}

variable "tags" {
  description = "Tags for AWS resources."
  type        = map(string)
  default     = {}
}

variable "auth_jwt_issuer" {
  description = "OpenID Connect issuer URL whose JWTs clients may present as bearer tokens (use with the secure overlay); empty for none."
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
