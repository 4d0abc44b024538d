"""Goldpath's pluggable app: AI-tool catalog, access policy, workspaces, agent runs, reports."""
