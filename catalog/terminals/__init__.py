"""Terminals in workspaces: the workspace agent's link to the portal and the audited PTY sessions relayed over it
(Django Channels consumers, their services and routing)."""
