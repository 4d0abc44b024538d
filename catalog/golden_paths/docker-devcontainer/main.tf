# A devcontainer on the team's Docker host. Needs the kreuzwerker/docker provider from the registry.
# Goldpath's workspace agent (goldpath_workspace_agent.py and goldpath_start.sh, which the portal writes beside these files for every build) runs
# inside the container beside its main process and dials OUT to the portal: terminals need no open port.
terraform {
  required_providers {
    docker = {
      source  = "kreuzwerker/docker"
      version = "~> 3.0"
    }
  }
}

variable "repository" {
  type        = string
  description = "A repository registered in Goldpath, by slug; the portal passes its checked clone URL to the container."
}

variable "image" {
  type        = string
  default     = "mcr.microsoft.com/devcontainers/python:3-bookworm"
  description = "Devcontainer image. It needs python3 for Goldpath's workspace agent (the Terminal)."
}

variable "cpus" {
  type        = number
  default     = 2
  description = "CPU shares for the container."
}

variable "memory_mb" {
  type        = number
  default     = 4096
  description = "Memory limit in MB."
}

variable "docker_host" {
  type        = string
  default     = "unix:///var/run/docker.sock"
  description = "The team's Docker host."
}

variable "goldpath_workspace_id" {
  type = string
}

variable "goldpath_transition" {
  type    = string
  default = "start"
}

variable "goldpath_tools" {
  type    = string
  default = "[]"
}

variable "goldpath_session" {
  type        = string
  sensitive   = true
  description = "The session spec: the workspace agent's link and token, the tools' gateway credential (JSON)."
}

locals {
  # "{}" for stop and delete: every field has a default so the plan never fails on it
  session     = jsondecode(var.goldpath_session)
  agent_url   = try(tostring(local.session.agent_url), "")
  agent_token = try(tostring(local.session.agent_token), "")
  # the shell's environment: plain settings, then the tools' credentials (the per-workspace gateway key)
  session_env = merge(try(tomap(local.session.env), {}), try(tomap(local.session.secrets), {}))
  agent_dir   = "/opt/goldpath" # the agent and its start script, uploaded before the container starts
}

provider "docker" {
  host = var.docker_host
}

resource "docker_image" "dev" {
  name = var.image
}

# Start creates the container, stop removes it (count 0): every start is a new container with this start's
# agent token. The token and the gateway key reach it only through `env`, derived from the sensitive
# goldpath_session (hidden in plans and logs), never through a label or the command line.
resource "docker_container" "workspace" {
  count  = var.goldpath_transition == "start" ? 1 : 0
  name   = "goldpath-${var.goldpath_workspace_id}"
  image  = docker_image.dev.image_id
  memory = var.memory_mb
  # goldpath_start.sh (a constant script, nothing interpolated) starts the agent in the background with the
  # container's environment, drops the agent's variables and becomes `sleep` (see the script)
  command = ["/bin/sh", "${local.agent_dir}/goldpath_start.sh"]
  env = concat(
    ["GOLDPATH_REPOSITORY=${var.repository}", "GOLDPATH_TOOLS=${var.goldpath_tools}"],
    [for k, v in local.session_env : "${k}=${v}" if !startswith(k, "GOLDPATH_AGENT_")],
    ["GOLDPATH_AGENT_URL=${local.agent_url}", "GOLDPATH_AGENT_TOKEN=${local.agent_token}"],
  )

  upload {
    file    = "${local.agent_dir}/goldpath_start.sh"
    content = file("${path.module}/goldpath_start.sh")
  }

  upload {
    file    = "${local.agent_dir}/goldpath_workspace_agent.py"
    content = file("${path.module}/goldpath_workspace_agent.py")
  }
}

output "container" {
  value = try(docker_container.workspace[0].name, "")
}

output "terminal" {
  value = "Open the Terminal on the workspace page (the agent inside the container dials out to the portal)."
}
