output "broker_endpoints" {
  description = "host:port of every broker's gRPC listener (give clients a few of them as --broker)."
  value       = [for b in aws_instance.broker : "${b.private_ip}:9292"]
}

output "kafka_bootstrap" {
  description = "host:port of every broker's Kafka listener (Kafka clients' bootstrap.servers, comma-separated)."
  value       = [for b in aws_instance.broker : "${b.private_ip}:9092"]
}

output "admin_endpoints" {
  description = "Admin HTTP listeners (/metrics, /healthz, /readyz) for Prometheus."
  value       = [for b in aws_instance.broker : "http://${b.private_ip}:9293"]
}

output "etcd_endpoints" {
  description = "etcd client URLs."
  value       = [for ip in local.etcd_ips : "http://${ip}:2379"]
}

output "bucket" {
  description = "The segment bucket."
  value       = module.bucket.bucket
}

output "object_store_url" {
  description = "tier.object_store of the brokers."
  value       = module.bucket.object_store_url
}

output "broker_security_group_id" {
  description = "Security group of the brokers (add client rules to it as needed)."
  value       = aws_security_group.broker.id
}
