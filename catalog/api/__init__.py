"""REST API v1: thin views that validate, authorize, call one service, render."""
