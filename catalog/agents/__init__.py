"""Parallel agent runs (issue 5): identity tokens, vendor key encryption, provenance signing, and the
worker-side execution of one run (sandbox, logs, diff, tests). State changes live in catalog.services (agent_groups,
agent_runs, agent_workspace, vendor_keys)."""
