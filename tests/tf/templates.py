"""Small Terraform templates for worker tests: offline (terraform_data + local-exec), values passed
through `environment` and quoted, never interpolated into the command."""

from __future__ import annotations

VARIABLES = """
variable "repository" {
  type        = string
  description = "A path"
}
variable "display_name" {
  type    = string
  default = ""
}
variable "sleep_s" {
  type    = number
  default = 0
}
variable "goldpath_workspace_id" {
  type = string
}
variable "goldpath_transition" {
  type    = string
  default = "start"
}
variable "goldpath_home" {
  type = string
}
"""

MAIN = """
locals {
  dir = "${var.goldpath_home}/ws-test/${var.goldpath_workspace_id}"
}

resource "terraform_data" "workspace" {
  input = local.dir
  triggers_replace = [var.goldpath_transition, var.display_name]

  provisioner "local-exec" {
    command = "mkdir -p \\"$DIR\\" && printf '# %s\\\\n' \\"$NAME\\" > \\"$DIR/WORKSPACE.md\\" && echo \\"$TRANSITION\\" > \\"$DIR/state\\" && echo created >> \\"$DIR/creations\\" && sleep \\"$SLEEP\\""
    environment = {
      DIR        = local.dir
      NAME       = var.display_name
      TRANSITION = var.goldpath_transition
      SLEEP      = tostring(var.sleep_s)
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "rm -rf \\"$DIR\\""
    environment = {
      DIR = self.input
    }
  }
}

output "path" {
  value = local.dir
}

output "secret" {
  value     = "s3cr3t-${var.goldpath_workspace_id}"
  sensitive = true
}
"""

ECHO = {"variables.tf": VARIABLES, "main.tf": MAIN}
BROKEN = {"main.tf": 'resource "terraform_data" "x" {\n  input = var.missing\n}\n'}


def session_values(agent_url: str = "ws://127.0.0.1:9/api/v1/workspaces/00000000-0000-0000-0000-000000000000/agent/"):
    """The built-ins the portal gives the local-sandbox template for its session (catalog.workspace_session),
    for tests that run the template directly: an agent link to nowhere (the agent keeps retrying)."""
    import json
    import sys

    spec = {"workspace_id": "test", "agent_url": agent_url, "agent_token": "gpa_test", "gateway_url": ""}
    return {
        "goldpath_session": json.dumps(spec),
        "goldpath_agent_launch": json.dumps([sys.executable, "-m", "catalog.workspace_host"]),
    }
