"""The built-in template variables: the ones the portal fills itself for every build, which a user can never set.

A template declares the ones it wants as ordinary Terraform variables; the portal writes their values into the
build's var-file (catalog.services.workspace_parameters.builtin_values, plus the session and the supervisor's
argv in the build task), hides them from the workspace forms and refuses them as user parameters. Django-free,
like the runners.
"""

from __future__ import annotations

BUILTIN_VARIABLES = (
    "goldpath_workspace_id",
    "goldpath_workspace_name",
    "goldpath_owner",
    "goldpath_transition",  # "start" or "stop"
    "goldpath_tools",  # JSON list of the build's tool slugs
    "goldpath_home",
    "goldpath_session",  # JSON: the workspace agent's session (rotated for each build that runs)
    "goldpath_agent_launch",  # JSON argv of the local workspace supervisor
)
