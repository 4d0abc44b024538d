"""The `goldpath` command-line client: a thin HTTP client of the portal's `/api/v1/`.

Nothing here imports Django or another catalog module: the CLI talks to a portal over HTTP only, so it
behaves the same against a laptop portal and a remote one.
"""
