# A workspace pod in the team's namespace. Needs the hashicorp/kubernetes provider from the registry.
terraform {
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.30"
    }
  }
}

variable "namespace" {
  type        = string
  description = "The team's namespace."
}

variable "image" {
  type        = string
  default     = "mcr.microsoft.com/devcontainers/base:bookworm"
  description = "Container image."
}

variable "cpu" {
  type        = string
  default     = "1"
  description = "CPU request and limit."
}

variable "memory" {
  type        = string
  default     = "4Gi"
  description = "Memory request and limit."
}

variable "labels" {
  type        = map(string)
  default     = {}
  description = "Extra labels on the pod."
}

variable "goldpath_workspace_id" {
  type = string
}

variable "goldpath_transition" {
  type    = string
  default = "start"
}

resource "kubernetes_pod_v1" "workspace" {
  count = var.goldpath_transition == "start" ? 1 : 0
  metadata {
    name      = "goldpath-${var.goldpath_workspace_id}"
    namespace = var.namespace
    labels    = merge(var.labels, { "app.kubernetes.io/managed-by" = "goldpath" })
  }
  spec {
    container {
      name    = "workspace"
      image   = var.image
      command = ["sleep", "infinity"]
      resources {
        limits   = { cpu = var.cpu, memory = var.memory }
        requests = { cpu = var.cpu, memory = var.memory }
      }
    }
  }
}

output "pod" {
  value = try(kubernetes_pod_v1.workspace[0].metadata[0].name, "")
}
