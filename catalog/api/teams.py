"""Teams, members and users API: everyone signed in reads; admins change."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import permissions as perms
from .. import selectors
from ..models import Role, Team
from ..services import teams as team_services
from ..services.errors import NotPermitted
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .permissions import AdminWritesOthersRead
from .serializers import StrictSerializerMixin

User = get_user_model()


class TeamSerializer(serializers.ModelSerializer):
    member_count = serializers.SerializerMethodField()
    managers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["slug", "name", "description", "member_count", "managers", "created_at"]
        read_only_fields = ["member_count", "managers", "created_at"]

    def get_member_count(self, team: Team) -> int:
        return len(team.group.user_set.all())


class TeamWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    slug = serializers.RegexField(r"^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$", max_length=50)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    role = serializers.CharField()
    member = serializers.BooleanField()
    manager = serializers.BooleanField()


class MemberWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    manager = serializers.BooleanField(required=False, default=False)

    def validate_username(self, value: str):
        user = User.objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError("No user with this username.")
        return user


def members_of(team: Team) -> list[dict]:
    return [
        {
            "username": row["user"].username,
            "email": row["user"].email,
            "role": row["role"],
            "member": row["is_member"],
            "manager": row["is_manager"],
        }
        for row in selectors.team_members(team)
    ]


class TeamViewSet(GoldpathAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    parser_classes = PARSER_CLASSES
    lookup_field = "slug"
    serializer_class = TeamSerializer
    permission_classes = [AdminWritesOthersRead]

    def get_queryset(self):
        return Team.objects.select_related("group").prefetch_related("group__user_set", "managers").order_by("slug")

    @extend_schema(request=TeamWriteSerializer, responses={201: TeamSerializer})
    def create(self, request: Request) -> Response:
        serializer = TeamWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = team_services.team_create(actor=request.user, **serializer.validated_data)
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TeamWriteSerializer, responses={200: TeamSerializer})
    def partial_update(self, request: Request, slug: str) -> Response:
        team = self.get_object()
        serializer = TeamWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "slug" in data and data["slug"] != team.slug:
            return Response({"slug": ["The slug cannot be changed."]}, status=status.HTTP_400_BAD_REQUEST)
        team = team_services.team_update(team=team, actor=request.user, data=data)
        return Response(TeamSerializer(team).data)

    def perform_destroy(self, instance: Team) -> None:
        team_services.team_delete(team=instance, actor=self.request.user)

    @extend_schema(methods=["GET"], responses={200: MemberSerializer(many=True)})
    @extend_schema(methods=["POST"], request=MemberWriteSerializer, responses={201: MemberSerializer(many=True)})
    @action(detail=True, methods=["get", "post"])
    def members(self, request: Request, slug: str) -> Response:
        team = self.get_object()
        if request.method == "POST":
            serializer = MemberWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            team_services.team_member_add(
                team=team, actor=request.user, user=data["username"], role=data.get("role"), manager=data["manager"]
            )
            return Response(members_of(team), status=status.HTTP_201_CREATED)
        rows = members_of(team)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)")
    def remove_member(self, request: Request, slug: str, username: str) -> Response:
        team = self.get_object()
        user = get_object_or_404(User, username=username)
        team_services.team_member_remove(team=team, actor=request.user, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    role = serializers.SerializerMethodField()
    teams = serializers.SerializerMethodField()
    managed_teams = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()

    def get_role(self, user) -> str:
        return perms.role_of(user)

    def get_teams(self, user) -> list[str]:
        return sorted(g.team.slug for g in user.groups.all() if hasattr(g, "team"))

    def get_managed_teams(self, user) -> list[str]:
        return sorted(t.slug for t in user.managed_teams.all())


class UserWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+$", max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    password = serializers.CharField(required=False, write_only=True, min_length=8, max_length=128)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.DEVELOPER)


class RoleSerializer(StrictSerializerMixin, serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class UserViewSet(GoldpathAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """People and their roles. Everyone signed in may look people up; admins create and change roles."""

    parser_classes = PARSER_CLASSES
    lookup_field = "username"
    lookup_value_regex = r"[\w.@+-]+"
    serializer_class = UserSerializer
    permission_classes = [AdminWritesOthersRead]

    def get_queryset(self):
        return (
            User.objects.select_related("profile")
            .prefetch_related("groups__team", "managed_teams")
            .order_by("username")
        )

    @extend_schema(responses={200: UserSerializer})
    @action(detail=False, methods=["get"], url_path="me")
    def me(self, request: Request) -> Response:
        """The signed-in user (for clients holding only a token, such as the `goldpath` CLI)."""
        return Response(UserSerializer(self.get_queryset().get(pk=request.user.pk)).data)

    @extend_schema(request=UserWriteSerializer, responses={201: UserSerializer})
    def create(self, request: Request) -> Response:
        serializer = UserWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = team_services.user_create(actor=request.user, **serializer.validated_data)
        return Response(UserSerializer(self.get_queryset().get(pk=user.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RoleSerializer, responses={200: UserSerializer})
    def partial_update(self, request: Request, username: str) -> Response:
        user = self.get_object()
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not perms.can_manage_teams(request.user):
            raise NotPermitted("Only admins change roles.")
        team_services.user_set_role(user=user, actor=request.user, role=serializer.validated_data["role"])
        return Response(UserSerializer(self.get_queryset().get(pk=user.pk)).data)
