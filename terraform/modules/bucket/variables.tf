variable "bucket_name" {
  description = "Name of the S3 bucket that holds tiered segments (globally unique)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits, dots and hyphens."
  }
}

variable "prefix" {
  description = "Key prefix of this cluster inside the bucket (no leading or trailing slash); several clusters can share a bucket under different prefixes."
  type        = string
  default     = "shale"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be path segments of [A-Za-z0-9._-] separated by '/', without leading or trailing '/'."
  }
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption; null uses the AWS-managed aws/s3 key."
  type        = string
  default     = null
}

variable "abort_incomplete_uploads_days" {
  description = "Days after which incomplete multipart uploads (left by a broker that crashed mid-upload) are aborted and their parts deleted."
  type        = number
  default     = 2
  validation {
    condition     = var.abort_incomplete_uploads_days >= 1
    error_message = "abort_incomplete_uploads_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete a bucket that still holds segments (all retained history is lost)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
