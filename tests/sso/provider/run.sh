#!/bin/sh
# Start Goldpath's test OpenID Connect provider (panva's oidc-provider, installed from npm on first use) on
# http://127.0.0.1:9000 with the users and groups of users.json beside this script, and print the settings
# that point the portal at it. Options: --port N, --users FILE, --portal ORIGIN (repeatable).
set -eu
cd "$(dirname "$0")/../../.."
exec "${PYTHON:-.venv/bin/python}" -m tests.sso.oidc_provider "$@"
