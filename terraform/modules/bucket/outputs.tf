output "bucket" {
  description = "Bucket name."
  value       = aws_s3_bucket.segments.id
}

output "bucket_arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.segments.arn
}

output "object_store_url" {
  description = "The value for Shale's tier.object_store (or --object-store)."
  value       = "s3://${aws_s3_bucket.segments.id}/${var.prefix}"
}

output "access_policy_json" {
  description = "IAM policy document granting a broker access to the cluster's prefix only."
  value       = data.aws_iam_policy_document.access.json
}
