# Three brokers and three etcd members in an existing VPC's private subnets.
#   terraform init && terraform apply -var-file=prod.tfvars

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC to deploy into."
  type        = string
}

variable "private_subnet_ids" {
  description = "Three private subnets, one per availability zone."
  type        = list(string)
}

variable "shale_download_url" {
  description = "HTTPS URL of the shale release tarball (linux x86_64)."
  type        = string
}

variable "shale_sha256" {
  description = "SHA-256 of that tarball."
  type        = string
}

provider "aws" {
  region = var.region
}

module "shale" {
  source             = "../../modules/aws-vm"
  name               = "shale-prod"
  vpc_id             = var.vpc_id
  broker_subnet_ids  = var.private_subnet_ids
  etcd_subnet_ids    = var.private_subnet_ids
  client_cidrs       = ["10.0.0.0/8"]
  monitoring_cidrs   = ["10.0.0.0/8"]
  broker_count       = 3
  bucket_name        = "example-shale-prod-segments"
  bucket_prefix      = "prod"
  shale_download_url = var.shale_download_url
  shale_sha256       = var.shale_sha256
  tags               = { environment = "prod" }
}

output "broker_endpoints" {
  description = "Give clients these as --broker (comma-separated)."
  value       = module.shale.broker_endpoints
}

output "kafka_bootstrap" {
  description = "Give Kafka clients these as bootstrap.servers (comma-separated)."
  value       = module.shale.kafka_bootstrap
}

output "etcd_endpoints" {
  description = "etcd client URLs (for backups: etcdctl snapshot save)."
  value       = module.shale.etcd_endpoints
}

output "bucket" {
  description = "The segment bucket."
  value       = module.shale.bucket
}
