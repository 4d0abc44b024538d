"""Prometheus metrics: database-backed families counted at scrape time (right across web and worker processes),
HTTP request metrics from a middleware, and the token-guarded `/metrics` view."""
