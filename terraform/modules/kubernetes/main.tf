# Shale on EKS: the segment bucket, an IAM role the brokers' service account assumes
# through IRSA (scoped to the cluster's prefix), and the deploy/k8s manifests applied
# through the Kustomize provider with this cluster's values patched in.

locals {
  tags           = merge({ "shale:cluster" = var.name }, var.tags)
  service_acct   = "system:serviceaccount:${var.namespace}:shale-broker"
  image_parts    = regex("^(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$", var.image)
  etcd_endpoints = join(",", var.etcd_endpoints)
}

module "bucket" {
  source      = "../bucket"
  bucket_name = var.bucket_name
  prefix      = var.bucket_prefix
  kms_key_arn = var.kms_key_arn
  tags        = local.tags
}

data "aws_iam_policy_document" "assume_irsa" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = [local.service_acct]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "broker" {
  name               = "${var.name}-broker"
  assume_role_policy = data.aws_iam_policy_document.assume_irsa.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "broker_bucket" {
  name   = "${var.name}-segments"
  role   = aws_iam_role.broker.id
  policy = module.bucket.access_policy_json
}

data "kustomization_overlay" "shale" {
  resources = [var.kustomize_path]
  namespace = var.namespace

  images {
    name     = "ghcr.io/shale-dev/shale"
    new_name = local.image_parts.repo
    new_tag  = try(local.image_parts.tag, "") == "" ? null : local.image_parts.tag
    digest   = try(local.image_parts.digest, "") == "" ? null : local.image_parts.digest
  }

  patches {
    target {
      kind = "ServiceAccount"
      name = "shale-broker"
    }
    patch = yamlencode([{
      op    = "add"
      path  = "/metadata/annotations"
      value = { "eks.amazonaws.com/role-arn" = aws_iam_role.broker.arn }
    }])
  }

  patches {
    target {
      kind = "StatefulSet"
      name = "shale-broker"
    }
    patch = yamlencode(concat(
      [
        { op = "replace", path = "/spec/replicas", value = var.replicas },
        { op = "replace", path = "/spec/template/spec/containers/0/env/4/value", value = module.bucket.object_store_url },
      ],
      length(var.etcd_endpoints) == 0 ? [] : [
        { op = "replace", path = "/spec/template/spec/containers/0/env/3/value", value = local.etcd_endpoints },
      ],
      var.auth_jwt_issuer == "" ? [] : [
        { op = "add", path = "/spec/template/spec/containers/0/env/-", value = { name = "SHALE_JWT_ISSUER", value = var.auth_jwt_issuer } },
        { op = "add", path = "/spec/template/spec/containers/0/env/-", value = { name = "SHALE_JWT_AUDIENCE", value = var.auth_jwt_audience } },
      ],
    ))
  }
}

# Apply in three waves (namespaces and CRDs, then everything else, then webhooks), as the
# provider recommends, so each wave's dependencies exist first.
resource "kustomization_resource" "p0" {
  for_each = data.kustomization_overlay.shale.ids_prio[0]
  manifest = data.kustomization_overlay.shale.manifests[each.value]
}

resource "kustomization_resource" "p1" {
  for_each   = data.kustomization_overlay.shale.ids_prio[1]
  manifest   = data.kustomization_overlay.shale.manifests[each.value]
  depends_on = [kustomization_resource.p0]
}

resource "kustomization_resource" "p2" {
  for_each   = data.kustomization_overlay.shale.ids_prio[2]
  manifest   = data.kustomization_overlay.shale.manifests[each.value]
  depends_on = [kustomization_resource.p1]
}
