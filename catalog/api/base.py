"""Every API view's own DRF policy, set here rather than read from the host's REST_FRAMEWORK.

Authentication, permissions, parsers, renderers, pagination, filtering, throttling and error handling are set
here, not read from the host's REST_FRAMEWORK, so a host whose defaults are AllowAny or unpaginated cannot open
or change Goldpath's API."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.openapi import AutoSchema
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from ..agents.identity import is_agent
from ..api_tokens import ExpiringTokenAuthentication
from ..conf import goldpath_settings
from .errors import exception_handler
from .pagination import StandardPagination
from .parsers import SafeJSONParser


class UserThrottle(UserRateThrottle):
    """Per signed-in user; an agent run's own identity is bounded by its run, not throttled here."""

    scope = "goldpath-user"

    def get_rate(self) -> str | None:
        return goldpath_settings.API_THROTTLE_USER or None

    def allow_request(self, request, view) -> bool:
        return is_agent(request.user) or super().allow_request(request, view)


class AnonThrottle(AnonRateThrottle):
    scope = "goldpath-anon"

    def get_rate(self) -> str | None:
        return goldpath_settings.API_THROTTLE_ANON or None  # None: DRF lets every request through


class GoldpathAPI:
    """First base of every Goldpath API view (a view may still narrow any of these for itself)."""

    authentication_classes = [ExpiringTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    pagination_class = StandardPagination
    filter_backends = [DjangoFilterBackend]
    throttle_classes = [UserThrottle, AnonThrottle]
    schema = AutoSchema()

    def get_exception_handler(self):
        return exception_handler
