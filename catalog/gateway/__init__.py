"""Goldpath's model gateway: every model call of an agent run goes through it (vendor key added upstream only)."""
