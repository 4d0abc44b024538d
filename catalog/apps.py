from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Goldpath catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import auth_hardening  # noqa: F401 - connects the sign-in audit receivers
