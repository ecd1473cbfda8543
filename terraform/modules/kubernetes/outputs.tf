output "bootstrap_endpoint" {
  description = "In-cluster address clients bootstrap from."
  value       = "shale.${var.namespace}.svc.cluster.local:9292"
}

output "kafka_bootstrap" {
  description = "In-cluster address Kafka clients bootstrap from (bootstrap.servers); they then dial each broker by its headless name."
  value       = "shale.${var.namespace}.svc.cluster.local:9092"
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
