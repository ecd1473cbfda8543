# Shale on an existing EKS cluster with IRSA and the bundled etcd.
#   terraform init && terraform apply -var cluster_name=my-eks

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

# The provider talks to the cluster through a kubeconfig (aws eks update-kubeconfig).
provider "kustomization" {
  kubeconfig_path = pathexpand("~/.kube/config")
}

module "shale" {
  source            = "../../modules/kubernetes"
  name              = "shale-prod"
  namespace         = "shale"
  kustomize_path    = "${path.module}/../../../deploy/k8s/overlays/bundled-etcd"
  image             = "ghcr.io/shale-dev/shale:0.1.0"
  oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
  oidc_provider_url = replace(data.aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
  bucket_name       = "example-shale-prod-segments"
  bucket_prefix     = "prod"
}

output "bootstrap_endpoint" {
  description = "In-cluster bootstrap address for clients."
  value       = module.shale.bootstrap_endpoint
}

output "kafka_bootstrap" {
  description = "In-cluster bootstrap.servers for Kafka clients."
  value       = module.shale.kafka_bootstrap
}

output "bucket" {
  description = "The segment bucket."
  value       = module.shale.bucket
}
