"""Team pages: the team list, and a team's members (managed by admins, read-only for others) and tool grants.

The tool-access section's context comes from views.access; a grant made from the team page, when refused,
shows this page again with the form's errors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.views.decorators.http import require_POST

from .. import permissions as perms
from .. import selectors
from ..forms import GrantForm, MemberAddForm, TeamCreateForm, add_domain_errors
from ..models import Role, Team
from ..services import grants as grant_services
from ..services import teams as team_services
from ..services.errors import DomainError, NotPermitted
from .access import GRANT_FORM_ATTR, team_access_context
from .rendering import render

User = get_user_model()
ACCESS_SECTION = "catalog/_team_access_section.html"


@login_required
def team_list(request, form: TeamCreateForm | None = None, status: int = 200):
    teams = (
        selectors.visible_teams(request.user)
        .annotate(member_count=Count("group__user", distinct=True), tool_count=Count("owned_tools", distinct=True))
        .prefetch_related("managers")
        .order_by("name")
    )
    mine = selectors.team_ids_of(request.user)
    create_form = form or (TeamCreateForm() if perms.can_manage_teams(request.user) else None)
    return render(
        request,
        "catalog/team_list.html",
        {"teams": teams, "my_team_ids": mine, "create_form": create_form},
        status=status,
    )


@login_required
@require_POST
def team_create(request):
    _admin_only(request)
    form = TeamCreateForm(request.POST)
    if not form.is_valid():
        return team_list(request, form=form, status=400)
    try:
        team = team_services.team_create(actor=request.user, **form.cleaned_data)
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        add_domain_errors(form, exc)
        return team_list(request, form=form, status=400)
    messages.success(request, f"Team {team.name} created. Add its members and managers below.")
    return redirect("goldpath:team-detail", slug=team.slug)


def _members(team: Team) -> list[dict]:
    return [{**row, "role": Role(row["role"]).label} for row in selectors.team_members(team)]


def _access_section(request, team: Team) -> dict:
    try:
        get_template(ACCESS_SECTION)
    except TemplateDoesNotExist:
        return {}
    return {"access_section": ACCESS_SECTION, **team_access_context(request, team)}


@login_required
def team_detail(request, slug: str, form: MemberAddForm | None = None, status: int = 200):
    team = get_object_or_404(selectors.visible_teams(request.user), slug=slug)
    can_manage_members = perms.can_manage_teams(request.user)
    context = {
        "team": team,
        "members": _members(team),
        "can_manage_members": can_manage_members,
        "member_form": form or (MemberAddForm() if can_manage_members else None),
        "owned_tools": team.owned_tools.order_by("name"),
        **_access_section(request, team),
    }
    return render(request, "catalog/team_detail.html", context, status=status)


def _admin_only(request) -> None:
    if not perms.can_manage_teams(request.user):
        raise PermissionDenied("Only admins manage teams and members.")


@login_required
@require_POST
def team_member_add(request, slug: str):
    _admin_only(request)
    team = get_object_or_404(Team, slug=slug)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return team_detail(request, slug, form=form, status=400)
    user, role = form.cleaned_data["user"], form.cleaned_data["role"] or None
    try:
        team_services.team_member_add(
            team=team, actor=request.user, user=user, role=role, manager=form.cleaned_data["manager"]
        )
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        add_domain_errors(form, exc)
        return team_detail(request, slug, form=form, status=400)
    what = "manager" if form.cleaned_data["manager"] else "member"
    messages.success(request, f"{user.username} is now a {what} of {team.name}.")
    return redirect("goldpath:team-detail", slug=team.slug)


@login_required
@require_POST
def team_member_change(request, slug: str, username: str, change: str):
    """`make-manager`, `remove`: one button per member row."""
    _admin_only(request)
    team = get_object_or_404(Team, slug=slug)
    user = get_object_or_404(User, username=username)
    try:
        if change == "make-manager":
            team_services.team_member_add(team=team, actor=request.user, user=user, manager=True)
            messages.success(request, f"{user.username} now manages {team.name}.")
        elif change == "remove":
            team_services.team_member_remove(team=team, actor=request.user, user=user)
            messages.success(request, f"{user.username} left {team.name}.")
        else:
            raise Http404
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, " ".join([exc.message, *[str(m) for v in exc.errors.values() for m in v]]))
    return redirect("goldpath:team-detail", slug=team.slug)


@login_required
@require_POST
def team_grant(request, slug: str):
    """Grant a team a tool from the team page. A refusal shows the team page again (400, or 409 when the tool or
    an existing grant is in the way) with the errors on the grant form's fields."""
    team = get_object_or_404(Team, slug=slug)
    if not perms.can_manage_grants(request.user):
        raise PermissionDenied("Only platform engineers grant tool access.")
    form = GrantForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            grant_services.grant_create(actor=request.user, team=team, **form.service_data())
        except NotPermitted as exc:
            raise PermissionDenied(exc.message) from exc
        except DomainError as exc:
            add_domain_errors(form, exc)
            status = exc.status_code
        else:
            messages.success(request, f"{team.name} may now use {form.cleaned_data['tool'].name}.")
            return redirect("goldpath:team-detail", slug=team.slug)
    setattr(request, GRANT_FORM_ATTR, form)
    return team_detail(request, team.slug, status=status)
