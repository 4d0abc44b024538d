"""The OpenAPI schema and its docs page, public and configured here: a host needs no SPECTACULAR_SETTINGS."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from ..conf import SPECTACULAR_SETTINGS


def only_goldpath(endpoints: list, **kwargs) -> list:
    """Keep Goldpath's own API: a host's other DRF views are not part of this schema."""
    prefix = reverse("goldpath:api:auth-token").removesuffix("auth/token/")
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(prefix)]




@extend_schema(exclude=True)
class SchemaView(SpectacularAPIView):
    """The API's schema: public, whatever the host's REST_FRAMEWORK defaults are."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    custom_settings = SPECTACULAR_SETTINGS


# served from our own static files: the docs work offline
DOCS_SETTINGS = {"SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}


@extend_schema(exclude=True)
class SwaggerView(SpectacularSwaggerView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request, *args, **kwargs):
        with patched_settings(DOCS_SETTINGS):
            return super().get(request, *args, **kwargs)
