# Shale on EC2: the segment bucket, three etcd members on fixed private IPs, and brokers on
# fixed instances, each with its own encrypted gp3 data volume for the local tail. Brokers
# reach the bucket through an instance profile scoped to the cluster's prefix. cloud-init
# installs the binaries and systemd units; SIGTERM (systemctl stop) drains a broker.

locals {
  tags         = merge({ "shale:cluster" = var.name }, var.tags)
  ami          = coalesce(var.ami_id, data.aws_ami.debian.id)
  etcd_ips     = [for i, s in data.aws_subnet.etcd : cidrhost(s.cidr_block, var.etcd_host_number)]
  etcd_names   = [for i in range(3) : "etcd-${i}"]
  etcd_cluster = join(",", [for i in range(3) : "${local.etcd_names[i]}=http://${local.etcd_ips[i]}:2380"])
  etcd_clients = join(",", [for ip in local.etcd_ips : "http://${ip}:2379"])
  broker_azs   = [for i in range(var.broker_count) : data.aws_subnet.broker[i % length(var.broker_subnet_ids)].availability_zone]
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

data "aws_subnet" "etcd" {
  count = 3
  id    = var.etcd_subnet_ids[count.index]
}

data "aws_subnet" "broker" {
  count = length(var.broker_subnet_ids)
  id    = var.broker_subnet_ids[count.index]
}

module "bucket" {
  source      = "../bucket"
  bucket_name = var.bucket_name
  prefix      = var.bucket_prefix
  kms_key_arn = var.kms_key_arn
  tags        = local.tags
}

# --- IAM: brokers may touch their prefix of the bucket, and be reached by SSM.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "broker" {
  name               = "${var.name}-broker"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "broker_bucket" {
  name   = "${var.name}-segments"
  role   = aws_iam_role.broker.id
  policy = module.bucket.access_policy_json
}

resource "aws_iam_role_policy_attachment" "broker_ssm" {
  role       = aws_iam_role.broker.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "broker" {
  name = "${var.name}-broker"
  role = aws_iam_role.broker.name
  tags = local.tags
}

resource "aws_iam_role" "etcd" {
  name               = "${var.name}-etcd"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "etcd_ssm" {
  role       = aws_iam_role.etcd.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "etcd" {
  name = "${var.name}-etcd"
  role = aws_iam_role.etcd.name
  tags = local.tags
}

# --- Network: clients to brokers, brokers to each other and to etcd, etcd peers.

resource "aws_security_group" "broker" {
  name        = "${var.name}-broker"
  description = "Shale brokers: gRPC from clients and peers, admin HTTP from monitoring"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "broker_grpc_clients" {
  for_each          = toset(var.client_cidrs)
  security_group_id = aws_security_group.broker.id
  description       = "gRPC from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 9292
  to_port           = 9292
}

resource "aws_vpc_security_group_ingress_rule" "broker_grpc_peers" {
  security_group_id            = aws_security_group.broker.id
  description                  = "gRPC between brokers (replication, forwarding)"
  referenced_security_group_id = aws_security_group.broker.id
  ip_protocol                  = "tcp"
  from_port                    = 9292
  to_port                      = 9292
}

# Kafka clients bootstrap from any broker, then dial each partition's leader and their
# group's coordinator directly: every broker must be reachable. Brokers never speak Kafka
# to each other (replication is gRPC), so there is no peer rule.
resource "aws_vpc_security_group_ingress_rule" "broker_kafka_clients" {
  for_each          = toset(var.client_cidrs)
  security_group_id = aws_security_group.broker.id
  description       = "Kafka protocol from clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 9092
  to_port           = 9092
}

resource "aws_vpc_security_group_ingress_rule" "broker_admin" {
  for_each          = toset(var.monitoring_cidrs)
  security_group_id = aws_security_group.broker.id
  description       = "Admin HTTP (/metrics, /healthz, /readyz) from monitoring"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 9293
  to_port           = 9293
}

resource "aws_vpc_security_group_egress_rule" "broker_out" {
  #checkov:skip=CKV_AWS_382:Brokers reach S3 and SSM endpoints over HTTPS, whose addresses are not fixed; egress is limited to port 443 plus the VPC-internal rules below.
  security_group_id = aws_security_group.broker.id
  description       = "HTTPS to S3, SSM and the package mirrors"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "broker_to_brokers" {
  security_group_id            = aws_security_group.broker.id
  description                  = "gRPC to other brokers"
  referenced_security_group_id = aws_security_group.broker.id
  ip_protocol                  = "tcp"
  from_port                    = 9292
  to_port                      = 9292
}

resource "aws_vpc_security_group_egress_rule" "broker_to_etcd" {
  security_group_id            = aws_security_group.broker.id
  description                  = "etcd client traffic"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
}

resource "aws_security_group" "etcd" {
  name        = "${var.name}-etcd"
  description = "etcd for Shale: clients are brokers, peers are members"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "etcd_clients" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd clients (brokers)"
  referenced_security_group_id = aws_security_group.broker.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2379
}

resource "aws_vpc_security_group_ingress_rule" "etcd_peers" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peers and member-local clients"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2380
}

resource "aws_vpc_security_group_egress_rule" "etcd_peers" {
  security_group_id            = aws_security_group.etcd.id
  description                  = "etcd peer traffic"
  referenced_security_group_id = aws_security_group.etcd.id
  ip_protocol                  = "tcp"
  from_port                    = 2379
  to_port                      = 2380
}

resource "aws_vpc_security_group_egress_rule" "etcd_https" {
  #checkov:skip=CKV_AWS_382:Package mirrors and SSM endpoints have no fixed addresses; egress is limited to HTTPS.
  security_group_id = aws_security_group.etcd.id
  description       = "HTTPS to package mirrors and SSM"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# --- etcd: three members on fixed private IPs (the initial cluster is known before boot).

resource "aws_instance" "etcd" {
  count                   = 3
  ami                     = local.ami
  instance_type           = var.etcd_instance_type
  subnet_id               = var.etcd_subnet_ids[count.index]
  private_ip              = local.etcd_ips[count.index]
  vpc_security_group_ids  = [aws_security_group.etcd.id]
  iam_instance_profile    = aws_iam_instance_profile.etcd.name
  key_name                = var.ssh_key_name
  monitoring              = true
  ebs_optimized           = true
  disable_api_termination = true
  user_data = templatefile("${path.module}/templates/etcd.yaml.tftpl", {
    name          = local.etcd_names[count.index]
    ip            = local.etcd_ips[count.index]
    cluster       = local.etcd_cluster
    cluster_token = "${var.name}-etcd"
  })
  user_data_replace_on_change = false
  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }
  tags = merge(local.tags, { Name = "${var.name}-${local.etcd_names[count.index]}" })
}

# --- Brokers: fixed instances with a data volume each; broker id = index + 1.

resource "aws_ebs_volume" "data" {
  count             = var.broker_count
  availability_zone = local.broker_azs[count.index]
  type              = "gp3"
  size              = var.data_volume_gb
  iops              = var.data_volume_iops
  throughput        = 250
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = merge(local.tags, { Name = "${var.name}-broker-${count.index + 1}-data" })
}

resource "aws_instance" "broker" {
  count                   = var.broker_count
  ami                     = local.ami
  instance_type           = var.broker_instance_type
  subnet_id               = var.broker_subnet_ids[count.index % length(var.broker_subnet_ids)]
  vpc_security_group_ids  = [aws_security_group.broker.id]
  iam_instance_profile    = aws_iam_instance_profile.broker.name
  key_name                = var.ssh_key_name
  monitoring              = true
  ebs_optimized           = true
  disable_api_termination = true
  user_data = templatefile("${path.module}/templates/broker.yaml.tftpl", {
    id             = count.index + 1
    cluster        = var.name
    etcd           = local.etcd_clients
    object_store   = module.bucket.object_store_url
    download_url   = var.shale_download_url
    sha256         = var.shale_sha256
    volume_id_name = replace(aws_ebs_volume.data[count.index].id, "-", "")
    security_toml  = local.security_toml
  })
  user_data_replace_on_change = false
  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }
  tags = merge(local.tags, { Name = "${var.name}-broker-${count.index + 1}" })
}

resource "aws_volume_attachment" "data" {
  count       = var.broker_count
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.broker[count.index].id
  # Stop the instance (a clean drain) rather than yank the volume.
  stop_instance_before_detaching = true
}

locals {
  # The [tls], [auth] and [acl] sections of every broker's shale.toml.
  security_toml = var.tls_enabled ? join("\n", concat(
    [
      "[tls]",
      "cert_file = \"${var.tls_dir}/tls.crt\"",
      "key_file = \"${var.tls_dir}/tls.key\"",
      "ca_file = \"${var.tls_dir}/ca.crt\"",
      "client_auth = \"optional\"",
      "[auth]",
      "require = true",
      "broker_principals = ${jsonencode([var.broker_principal])}",
    ],
    var.auth_jwt_issuer == "" ? [] : [
      "[auth.jwt]",
      "issuer = ${jsonencode(var.auth_jwt_issuer)}",
      "audience = ${jsonencode(var.auth_jwt_audience)}",
    ],
    ["[acl]", "super_users = ${jsonencode(var.acl_super_users)}"],
    )) : join("\n", [
    "[tls]",
    "# Plaintext inside the VPC (the security group admits only the client CIDRs).",
    "allow_plaintext = true",
  ])
}
