"""Web pages (Django templates + htmx): thin views over selectors and services."""
