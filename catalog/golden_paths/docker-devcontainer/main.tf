# A devcontainer on the team's Docker host. Needs the kreuzwerker/docker provider from the registry.
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
  default     = "mcr.microsoft.com/devcontainers/base:bookworm"
  description = "Devcontainer image."
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

provider "docker" {
  host = var.docker_host
}

resource "docker_image" "dev" {
  name = var.image
}

resource "docker_container" "workspace" {
  count    = var.goldpath_transition == "start" ? 1 : 0
  name     = "goldpath-${var.goldpath_workspace_id}"
  image    = docker_image.dev.image_id
  memory   = var.memory_mb
  command  = ["sleep", "infinity"]
  env      = ["GOLDPATH_REPOSITORY=${var.repository}", "GOLDPATH_TOOLS=${var.goldpath_tools}"]
}

output "container" {
  value = try(docker_container.workspace[0].name, "")
}
