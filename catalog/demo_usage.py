"""90 days of plausible usage history for the demo teams (`source=demo-seed`).

It gives a new installation an adoption report to look at. Deterministic (seeded random) and created once: a
second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .models import AITool, Team, UsageEvent
from .services import teams as team_services

SOURCE = "demo-seed"
DAYS = 90

# extra developers so the demo teams have a realistic size (no password: they never sign in)
EXTRA_MEMBERS = [
    ("priya", "payments", "Priya Raman"),
    ("tom", "payments", "Tom Becker"),
    ("mei", "payments", "Mei Chen"),
    ("jonas", "search", "Jonas Berg"),
    ("sara", "search", "Sara Haddad"),
]

# team -> [(tool, weight, estimated per-use cost of an agent run)]
TEAM_TOOLS = {
    "payments": [("claude-code", 5, "0.35"), ("aider", 2, "0.10"), ("github-copilot", 3, None)],
    "search": [("codex-cli", 5, "0.20"), ("github-copilot", 3, None)],
}
AGENT_TOOLS = {"claude-code", "codex-cli", "aider"}
# agent tool -> dollars per million input and output tokens of the model its runs call through the gateway
MODEL_PRICES = {
    "claude-code": (Decimal("3"), Decimal("15")),
    "codex-cli": (Decimal("1.25"), Decimal("10")),
    "aider": (Decimal("3"), Decimal("15")),
}
TEMPLATES = {"payments": "python-service", "search": "go-service"}


def _members(admin) -> dict[str, list]:
    User = get_user_model()
    for username, team_slug, full_name in EXTRA_MEMBERS:
        team = Team.objects.filter(slug=team_slug).first()
        if team is None:
            continue
        first, _, last = full_name.partition(" ")
        user, made = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com", "first_name": first, "last_name": last}
        )
        if made:
            user.set_unusable_password()
            user.save()
        if not team.members.filter(pk=user.pk).exists():
            team_services.team_member_add(team=team, actor=admin, user=user)
    return {
        slug: list(Team.objects.get(slug=slug).members.order_by("username"))
        for slug in TEAM_TOOLS
        if Team.objects.filter(slug=slug).exists()
    }


def _events_for(day: dt.date, team: Team, user, tools, rng: random.Random, ramp: float, tool_objs) -> list[UsageEvent]:
    out: list[UsageEvent] = []
    weekday = day.weekday() < 5
    if rng.random() > (0.25 + 0.6 * ramp) * (1.0 if weekday else 0.15):
        return out
    n = 0

    def add(kind: str, tool: str = "", hour: int = 10, **fields) -> None:
        nonlocal n
        n += 1
        at = dt.datetime.combine(day, dt.time(hour, rng.randrange(60)), tzinfo=dt.UTC)
        out.append(
            UsageEvent(
                at=at,
                day=day,
                kind=kind,
                user=user,
                user_ref=user.username,
                team=team,
                team_slug=team.slug,
                tool=tool_objs.get(tool),
                tool_slug=tool,
                source=SOURCE,
                key=f"demo:{day.isoformat()}:{user.username}:{n}",
                **fields,
            )
        )

    chosen = rng.choices([t for t, _, _ in tools], weights=[w for _, w, _ in tools], k=rng.choice((1, 1, 2)))
    for tool in dict.fromkeys(chosen):
        per_use = dict((t, c) for t, _, c in tools)[tool]
        if tool in AGENT_TOOLS:
            for _ in range(rng.choice((1, 1, 2, 3))):
                hour = rng.randrange(9, 18)
                add("agent_run_started", tool, hour)
                ok = rng.random() < 0.82
                add(
                    "agent_run_finished",
                    tool,
                    hour,
                    outcome="succeeded" if ok else rng.choice(("failed", "timed_out")),
                    duration_s=float(rng.randrange(45, 900)),
                    cost=Decimal(per_use) if per_use else None,
                )
                _model_calls(add, tool, hour, f"{day.isoformat()}:{user.username}:{n}")
                if ok and rng.random() < 0.3 + 0.3 * ramp:
                    add("agent_result_accepted", tool, hour + 1)
        else:
            add("tool_used", tool, rng.randrange(9, 18))
    if rng.random() < 0.12:
        template = TEMPLATES.get(team.slug, "")
        add("workspace_created", "", 9, template_slug=template)
        if rng.random() < 0.9:
            add(
                "build_succeeded",
                "",
                9,
                template_slug=template,
                outcome="start",
                duration_s=float(rng.randrange(25, 140)),
            )
        else:
            add("build_failed", "", 9, template_slug=template, outcome="start", duration_s=float(rng.randrange(10, 60)))
        add("tool_enabled", chosen[0], 9, template_slug=template)
    if rng.random() < 0.02:
        add("policy_denied", "codex-cli" if team.slug == "payments" else "claude-code", 11, outcome="no_grant")
    return out


def _model_calls(add, tool: str, hour: int, seed: str) -> None:
    """The run's model calls through the gateway, folded into one `model_call` event (its own random stream,
    so the rest of the history stays as it was before token figures were added)."""
    rng = random.Random(f"goldpath-demo-tokens:{seed}")
    calls = rng.randrange(3, 25)
    input_tokens = sum(rng.randrange(2_000, 30_000) for _ in range(calls))
    output_tokens = sum(rng.randrange(100, 2_500) for _ in range(calls))
    per_in, per_out = MODEL_PRICES[tool]
    cost = (input_tokens * per_in + output_tokens * per_out) / Decimal(1_000_000)
    add(
        "model_call",
        tool,
        hour,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model_cost=cost.quantize(Decimal("0.000001")),
    )


@transaction.atomic
def seed_usage_history(*, admin, today: dt.date | None = None) -> int:
    """Create the demo history once (returns the number of events created; 0 when it exists)."""
    members = _members(admin)
    if UsageEvent.objects.filter(source=SOURCE).exists():
        return 0
    today = today or timezone.now().date()
    tool_objs = {t.slug: t for t in AITool.objects.all()}
    teams = {t.slug: t for t in Team.objects.filter(slug__in=list(members))}
    events: list[UsageEvent] = []
    start = today - dt.timedelta(days=DAYS)
    for offset in range(DAYS):
        day = start + dt.timedelta(days=offset)
        ramp = offset / DAYS
        for slug, users in members.items():
            for user in users:
                rng = random.Random(f"goldpath-demo:{day.isoformat()}:{user.username}")
                events.extend(_events_for(day, teams[slug], user, TEAM_TOOLS[slug], rng, ramp, tool_objs))
    # the requests that led to today's grants, early in the window
    first = dt.datetime.combine(start + dt.timedelta(days=10), dt.time(9), tzinfo=dt.UTC)
    for i, (slug, tool) in enumerate((("payments", "claude-code"), ("payments", "aider"), ("search", "codex-cli"))):
        if slug not in teams:
            continue
        for kind, delta in (("access_requested", 0), ("access_granted", 2)):
            at = first + dt.timedelta(days=i + delta)
            events.append(
                UsageEvent(
                    at=at,
                    day=at.date(),
                    kind=kind,
                    team=teams[slug],
                    team_slug=slug,
                    tool=tool_objs.get(tool),
                    tool_slug=tool,
                    source=SOURCE,
                    key=f"demo:{kind}:{slug}:{tool}",
                )
            )
    UsageEvent.objects.bulk_create(events, batch_size=1000, ignore_conflicts=True)
    return len(events)
