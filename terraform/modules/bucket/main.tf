# The bucket for tiered segments. Versioning stays off: Shale never overwrites an object
# (every upload has a unique name) and deletes are final by design (retention); versions
# would only keep deleted history at full price. Objects nothing references (a crash
# between upload and commit) are removed by Shale's scrubber; the lifecycle rule cleans up
# multipart uploads that a crash left incomplete, which the scrubber cannot see.

resource "aws_s3_bucket" "segments" {
  #checkov:skip=CKV_AWS_21:Versioning is off on purpose: objects are write-once and retention deletes must free space.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice left to the operator; segments can be re-created only from the brokers' local tail.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket the operator owns; enable it there.
  #checkov:skip=CKV2_AWS_62:Shale reacts to no bucket events.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "segments" {
  bucket = aws_s3_bucket.segments.id
  versioning_configuration {
    status = "Disabled"
  }
}

resource "aws_s3_bucket_public_access_block" "segments" {
  bucket                  = aws_s3_bucket.segments.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "segments" {
  bucket = aws_s3_bucket.segments.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "segments" {
  bucket = aws_s3_bucket.segments.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "segments" {
  #checkov:skip=CKV_AWS_300:The period is set below from var.abort_incomplete_uploads_days (validated >= 1); checkov does not resolve it through every calling module.
  bucket = aws_s3_bucket.segments.id
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {
      prefix = "${var.prefix}/"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_uploads_days
    }
  }
}

# What a broker needs, and no more: objects under the cluster's prefix.
data "aws_iam_policy_document" "access" {
  statement {
    sid = "Segments"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.segments.arn}/${var.prefix}/*"]
  }
  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.segments.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}/*", "${var.prefix}/"]
    }
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "Encryption"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}
