terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = ">= 0.9"
    }
  }
}
