"""The mapping rule form: a claim value and what it grants (team member, team manager, or a role)."""

from __future__ import annotations

from typing import Any

from django import forms

from ..models import Role, SsoMappingRule, Team, TeamLevel

KIND_CHOICES = [
    (TeamLevel.MEMBER.value, "Member of a team"),
    (TeamLevel.MANAGER.value, "Manager of a team (and member)"),
    ("role", "Portal role"),
]


class MappingRuleForm(forms.Form):
    """Checked again by the services (catalog.sso.rules), which are the authority."""

    claim_value = forms.CharField(
        max_length=255,
        label="Claim value",
        help_text="A value of the mapped claim, for example the group name eng-payments.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    kind = forms.ChoiceField(choices=KIND_CHOICES, label="Grants", widget=forms.RadioSelect)
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("slug"), to_field_name="slug", required=False, empty_label="Choose a team"
    )
    role = forms.ChoiceField(choices=[("", "Choose a role"), *Role.choices], required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].label_from_instance = lambda team: f"{team.name} ({team.slug})"

    @classmethod
    def for_rule(cls, rule: SsoMappingRule) -> MappingRuleForm:
        kind = rule.team_level if rule.team_id else "role"
        return cls(initial={"claim_value": rule.claim_value, "kind": kind, "team": rule.team, "role": rule.role})

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind in (TeamLevel.MEMBER, TeamLevel.MANAGER) and not data.get("team"):
            self.add_error("team", "Choose the team this claim value joins.")
        if kind == "role" and not data.get("role"):
            self.add_error("role", "Choose the role this claim value gives.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        team_kind = data["kind"] != "role"
        return {
            "claim_value": data["claim_value"],
            "kind": data["kind"],
            "team": data.get("team") if team_kind else None,
            "role": "" if team_kind else data.get("role", ""),
        }
