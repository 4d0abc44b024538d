"""Mapping rules' services: admins manage the rules that turn a provider's claim into teams and roles.

Mapping rules' services: admins create, change and delete the rules that turn a claim value (a group at the
identity provider) into a team membership or a role. Each change is audited; it takes effect for each user at
their next sign-in, when the sync (catalog.sso.sync) applies the rules."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .. import audit, permissions
from ..models import Role, SsoMappingRule, Team, TeamLevel
from ..services.errors import InvalidInput, NotPermitted

DENIED = "Only admins edit the single sign-on mapping rules."
KINDS = (TeamLevel.MEMBER, TeamLevel.MANAGER, "role")


def can_manage_rules(user: Any) -> bool:
    """The rules hand out team memberships and roles, which only admins manage (permissions.can_manage_teams)."""
    return permissions.can_manage_teams(user)


def _require_admin(actor: Any) -> None:
    if not can_manage_rules(actor):
        raise NotPermitted(DENIED)


def _clean(*, claim_value: Any, kind: Any, team: Team | None, role: Any) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    value = claim_value.strip() if isinstance(claim_value, str) else ""
    if not value:
        errors["claim_value"] = ["Name the claim value (for example a group name)."]
    elif len(value) > 255:
        errors["claim_value"] = ["At most 255 characters."]
    if kind not in KINDS:
        errors["kind"] = ["Choose member, manager or role."]
    fields: dict[str, Any] = {"claim_value": value, "team": None, "team_level": "", "role": ""}
    if kind in (TeamLevel.MEMBER, TeamLevel.MANAGER):
        if team is None:
            errors["team"] = ["Choose the team this claim value joins."]
        fields.update(team=team, team_level=kind)
    elif kind == "role":
        if role not in Role.values:
            errors["role"] = [f"Choose one of: {', '.join(Role.values)}."]
        fields.update(role=role)
    if errors:
        raise InvalidInput("The rule is not valid.", errors=errors)
    return fields


def _check_unique(fields: dict[str, Any], exclude: int | None = None) -> None:
    same = SsoMappingRule.objects.filter(claim_value=fields["claim_value"])
    same = same.filter(team=fields["team"]) if fields["team"] else same.filter(team__isnull=True, role=fields["role"])
    if same.exclude(pk=exclude).exists():
        raise InvalidInput(
            "A rule like this exists.",
            errors={"claim_value": ["A rule already maps this value to this team or role; edit that one."]},
        )


def _describe(rule: SsoMappingRule) -> dict[str, Any]:
    return {"claim_value": rule.claim_value, "target": rule.target_label}


@transaction.atomic
def sso_rule_create(
    *, actor: Any, claim_value: str, kind: str, team: Team | None = None, role: str = ""
) -> SsoMappingRule:
    _require_admin(actor)
    fields = _clean(claim_value=claim_value, kind=kind, team=team, role=role)
    _check_unique(fields)
    rule = SsoMappingRule.objects.create(created_by=actor, **fields)
    audit.record(actor=actor, verb="sso_rule.created", target=rule, payload=_describe(rule))
    return rule


@transaction.atomic
def sso_rule_update(
    *, rule: SsoMappingRule, actor: Any, claim_value: str, kind: str, team: Team | None = None, role: str = ""
) -> SsoMappingRule:
    _require_admin(actor)
    rule = SsoMappingRule.objects.select_for_update(of=("self",)).select_related("team").get(pk=rule.pk)
    before = _describe(rule)
    fields = _clean(claim_value=claim_value, kind=kind, team=team, role=role)
    _check_unique(fields, exclude=rule.pk)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    after = _describe(rule)
    if after != before:
        audit.record(actor=actor, verb="sso_rule.updated", target=rule, payload={"before": before, "after": after})
    return rule


@transaction.atomic
def sso_rule_delete(*, rule: SsoMappingRule, actor: Any) -> None:
    _require_admin(actor)
    rule = SsoMappingRule.objects.select_for_update(of=("self",)).select_related("team").get(pk=rule.pk)
    pk, described = rule.pk, _describe(rule)
    rule.delete()
    audit.record(
        actor=actor,
        verb="sso_rule.deleted",
        target_type="ssomappingrule",
        target_id=pk,
        target_repr=str(described["claim_value"]),
        payload=described,
    )
