# A workspace pod in the team's namespace. Needs the hashicorp/kubernetes provider from the registry.
# Goldpath's workspace agent (goldpath_workspace_agent.py and goldpath_start.sh, which the portal writes beside these files for every build) runs in
# the workspace container itself, beside its main process, and dials OUT to the portal: terminals need no
# Service, Ingress or open port, and a terminal is a shell in the image the developer works in.
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
  default     = "mcr.microsoft.com/devcontainers/python:3-bookworm"
  description = "Container image. It needs python3 for Goldpath's workspace agent (the Terminal)."
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

variable "goldpath_session" {
  type        = string
  sensitive   = true
  description = "The session spec: the workspace agent's link and token, the tools' gateway credential (JSON)."
}

locals {
  name = "goldpath-${var.goldpath_workspace_id}"
  # "{}" for stop and delete: every field has a default so the plan never fails on it
  session   = jsondecode(var.goldpath_session)
  agent_url = try(tostring(local.session.agent_url), "")
  # everything that reaches the pod through the Secret: the shell's environment (plain settings, then the tools'
  # credentials: the per-workspace gateway key) and this start's agent token
  secret_env = merge(
    { for k, v in try(tomap(local.session.env), {}) : k => v if !startswith(k, "GOLDPATH_AGENT_") },
    { for k, v in try(tomap(local.session.secrets), {}) : k => v if !startswith(k, "GOLDPATH_AGENT_") },
    { GOLDPATH_AGENT_TOKEN = try(tostring(local.session.agent_token), "") },
  )
  agent_dir = "/opt/goldpath" # the agent and its start script, mounted read-only from the ConfigMap
}

# The agent program and its start script (no secret): a ConfigMap mounted into the pod.
resource "kubernetes_config_map_v1" "agent" {
  count = var.goldpath_transition == "start" ? 1 : 0
  metadata {
    name      = "${local.name}-agent"
    namespace = var.namespace
    labels    = { "app.kubernetes.io/managed-by" = "goldpath" }
  }
  data = {
    "goldpath_workspace_agent.py" = file("${path.module}/goldpath_workspace_agent.py")
    "goldpath_start.sh"           = file("${path.module}/goldpath_start.sh")
  }
}

# This start's agent token and the tools' credentials: a Secret, read by the pod through env_from. Never in a
# label, an annotation or the command line. Stop deletes it with the pod (count 0).
resource "kubernetes_secret_v1" "session" {
  count = var.goldpath_transition == "start" ? 1 : 0
  metadata {
    name      = "${local.name}-session"
    namespace = var.namespace
    labels    = { "app.kubernetes.io/managed-by" = "goldpath" }
  }
  type = "Opaque"
  data = local.secret_env
}

resource "kubernetes_pod_v1" "workspace" {
  count = var.goldpath_transition == "start" ? 1 : 0
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = merge(var.labels, { "app.kubernetes.io/managed-by" = "goldpath" })
  }
  spec {
    # the workspace talks to the portal, not to the cluster's API
    automount_service_account_token = false
    container {
      name  = "workspace"
      image = var.image
      # goldpath_start.sh (nothing interpolated) starts the agent in the background with the container's
      # environment, drops the agent's variables and becomes `sleep` (see the script)
      command = ["/bin/sh", "${local.agent_dir}/goldpath_start.sh"]
      env {
        name  = "GOLDPATH_AGENT_URL"
        value = local.agent_url
      }
      env_from {
        secret_ref {
          name = kubernetes_secret_v1.session[0].metadata[0].name
        }
      }
      volume_mount {
        name       = "goldpath-agent"
        mount_path = local.agent_dir
        read_only  = true
      }
      resources {
        limits   = { cpu = var.cpu, memory = var.memory }
        requests = { cpu = var.cpu, memory = var.memory }
      }
    }
    volume {
      name = "goldpath-agent"
      config_map {
        name         = kubernetes_config_map_v1.agent[0].metadata[0].name
        default_mode = "0444"
      }
    }
  }
  # env_from reads the Secret when the container starts: a start that rotates the token (or ships a new agent)
  # replaces the pod, so the agent always dials out with the current token
  lifecycle {
    replace_triggered_by = [kubernetes_secret_v1.session, kubernetes_config_map_v1.agent]
  }
}

output "pod" {
  value = try(kubernetes_pod_v1.workspace[0].metadata[0].name, "")
}

output "terminal" {
  value = "Open the Terminal on the workspace page (the agent inside the pod dials out to the portal)."
}
