"""The policy simulator: what `decide` would answer for this user, tool and context.

One function for the simulator page and `POST /api/v1/authz/check/`. Nothing is written.

Everyone may ask about themselves; managers about the members of the teams they manage; platform engineers,
auditors and admins about anyone (NotPermitted, 403, otherwise: a developer asking about a user who does not
exist learns nothing either). Unknown tools, classifications and templates are field errors (400). Templates
are resolved by catalog.policy_hooks.resolve_template (Goldpath's golden paths, and any registered resolver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from . import permissions as perms
from .models import AITool, DataClassification
from .policy import Decision, PolicyContext, decide
from .policy_hooks import resolve_template
from .services.errors import InvalidInput, NotPermitted

SELF_ONLY = "You may ask about yourself only."


@dataclass(frozen=True)
class Simulation:
    subject: Any  # the user asked about
    tool: AITool
    classification: str
    template_slug: str | None
    decision: Decision

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.decision.as_dict(),
            "user": self.subject.username,
            "tool": self.tool.slug,
            "classification": self.classification,
            "template": self.template_slug,
        }


def _subject(actor: Any, username: str) -> Any:
    username = username.strip() or actor.username
    subject = actor if username == actor.username else get_user_model().objects.filter(username=username).first()
    if subject is None:
        if not perms.can_read_everything(actor):
            raise NotPermitted(SELF_ONLY)
        raise InvalidInput("Unknown user.", errors={"user": ["No user with this username."]})
    if not perms.can_simulate_for(actor, subject):
        raise NotPermitted(SELF_ONLY)
    return subject


def simulate(
    actor: Any, *, user: str = "", tool: str = "", classification: str = "", template: str | None = ""
) -> Simulation:
    """The decision `decide(user, tool, context)` would give now, and what it was asked."""
    subject = _subject(actor, user or "")
    errors: dict[str, list[str]] = {}
    tool_obj = AITool.objects.filter(slug=tool.strip()).first() if tool and tool.strip() else None
    if tool_obj is None:
        errors["tool"] = ["No tool with this slug." if tool else "Choose a tool."]
    classification = (classification or "").strip() or DataClassification.INTERNAL
    if classification not in DataClassification.values:
        errors["classification"] = [f"Choose one of: {', '.join(DataClassification.values)}."]
    slug = (template or "").strip() or None
    template_obj = resolve_template(slug) if slug else None
    if slug and template_obj is None:
        errors["template"] = ["No template with this slug."]
    if errors:
        message = "Unknown template." if set(errors) == {"template"} else "Check the question."
        raise InvalidInput(message, errors=errors)
    context = PolicyContext(classification=classification, template=template_obj)
    return Simulation(
        subject=subject,
        tool=tool_obj,
        classification=classification,
        template_slug=slug,
        decision=decide(subject, tool_obj, context),
    )
