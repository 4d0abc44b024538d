"""Token auth: POST username/password for a token; DELETE revokes the caller's token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import audit
from .parsers import PARSER_CLASSES


class TokenView(APIView):
    parser_classes = PARSER_CLASSES

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(
        request=AuthTokenSerializer,
        responses={200: inline_serializer("TokenOut", {"token": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, created = Token.objects.get_or_create(user=user)
        if created:
            audit.record(actor=user, verb="token.create", target=user, target_repr=user.username)
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        deleted, _ = Token.objects.filter(user=request.user).delete()
        if deleted:
            audit.record(
                actor=request.user, verb="token.revoke", target=request.user, target_repr=request.user.username
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
