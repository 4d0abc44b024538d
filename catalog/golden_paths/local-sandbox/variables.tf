variable "repository" {
  type        = string
  description = "A repository registered in Goldpath, by slug; the portal passes its checked clone address."
}

variable "ref" {
  type        = string
  default     = "main"
  description = "Branch, tag or commit to check out."
}

variable "display_name" {
  type        = string
  default     = ""
  description = "Free text shown at the top of WORKSPACE.md."
}

variable "memory_mb" {
  type        = number
  default     = 2048
  description = "Memory for the workspace's processes, in MB."
}

variable "allow_network" {
  type        = bool
  default     = false
  description = "Allow network access from the workspace sandbox."
}

# Filled by Goldpath, never shown in forms.
variable "goldpath_workspace_id" {
  type = string
}

variable "goldpath_workspace_name" {
  type    = string
  default = ""
}

variable "goldpath_owner" {
  type    = string
  default = ""
}

variable "goldpath_transition" {
  type    = string
  default = "start"
}

variable "goldpath_tools" {
  type    = string
  default = "[]"
}

variable "goldpath_home" {
  type = string
}

variable "goldpath_session" {
  type      = string
  sensitive = true
  description = "The session spec: the workspace agent's link and token, the tools' gateway credential (JSON)."
}

variable "goldpath_agent_launch" {
  type        = string
  description = "The session supervisor's argv (JSON list), run without a shell."
}
