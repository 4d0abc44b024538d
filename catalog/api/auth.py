"""Token auth API: sign in for a token, revoke it, and list and revoke the caller's tokens.

POST username/password for a token (locked out after repeated failures), DELETE revokes the caller's token;
`auth/tokens/` lists the caller's tokens and revokes one by id.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import api_tokens, audit, auth_hardening
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES


class TokenView(GoldpathAPI, APIView):
    parser_classes = PARSER_CLASSES

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("TokenOut", {"token": serializers.CharField()}),
            429: inline_serializer("SigninLockedOut", {"detail": serializers.CharField()}),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            # axes flags the request when this failure reached the limit or a lockout refused it
            if getattr(request, "axes_locked_out", False):
                return Response({"detail": auth_hardening.lockout_message()}, status=status.HTTP_429_TOO_MANY_REQUESTS)
            serializer.is_valid(raise_exception=True)
        token = api_tokens.token_issue(user=serializer.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        deleted, _ = Token.objects.filter(user=request.user).delete()
        if deleted:
            audit.record(
                actor=request.user, verb="token.revoked", target=request.user, target_repr=request.user.username
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField(help_text="the token's last characters, never the token")
    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()
    expired = serializers.BooleanField()


class TokenListView(GoldpathAPI, generics.ListAPIView):
    """The caller's API tokens. DRF's authtoken keeps one token per user, so this lists at most one."""

    serializer_class = TokenInfoSerializer
    filter_backends: list = []

    def get_queryset(self) -> list[api_tokens.TokenInfo]:
        return [api_tokens.token_info(t) for t in api_tokens.tokens_of(self.request.user)]


class TokenDetailView(GoldpathAPI, APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, token_id: str) -> Response:
        token = api_tokens.token_of(request.user, token_id)
        if token is None:
            raise NotFound()
        api_tokens.token_revoke(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
