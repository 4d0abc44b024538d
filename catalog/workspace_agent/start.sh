#!/bin/sh
# Goldpath workspace start (docker-devcontainer and kubernetes-pod templates): the container's main process.
# Starts Goldpath's workspace agent in the background with this environment (GOLDPATH_AGENT_URL and
# GOLDPATH_AGENT_TOKEN, set by the template from the sensitive goldpath_session), then drops the agent's
# variables and becomes `sleep`: /proc/1/environ of the container no longer holds the token. The agent removes
# them from its own environment at once and is non-dumpable; the token is spent at its first connection.
# Nothing here is filled in by Terraform: every value comes from the environment.
agent="${GOLDPATH_AGENT_FILE:-/opt/goldpath/goldpath_workspace_agent.py}"
if [ -z "${GOLDPATH_AGENT_URL:-}" ] || [ -z "${GOLDPATH_AGENT_TOKEN:-}" ]; then
  echo "goldpath: no agent link in this start: the workspace runs without its Terminal" >&2
elif ! command -v python3 >/dev/null 2>&1; then
  echo "goldpath: python3 is not in this image: the workspace agent (the Terminal) cannot start" >&2
else
  python3 -I "$agent" &
fi
unset GOLDPATH_AGENT_TOKEN GOLDPATH_AGENT_URL GOLDPATH_AGENT_FILE
exec sleep infinity
