output "bootstrap_endpoint" {
  description = "In-cluster address clients bootstrap from."
  value       = "shale.${var.namespace}.svc.cluster.local:9292"
}

output "bucket" {
  description = "The segment bucket."
  value       = module.bucket.bucket
}

output "object_store_url" {
  description = "tier.object_store of the brokers."
  value       = module.bucket.object_store_url
}

output "broker_role_arn" {
  description = "IAM role the brokers assume (IRSA)."
  value       = aws_iam_role.broker.arn
}
