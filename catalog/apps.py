from django.apps import AppConfig

from .conf import apply_host_defaults

# at import, before guardian and axes read these settings (app modules load before any app is ready)
apply_host_defaults()


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Goldpath catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            auth_hardening,  # noqa: F401 - connects the sign-in audit receivers
            checks,  # noqa: F401 - registers the host-contract system checks
        )
