"""Budget reservations: a model call takes its share of its grant's monthly budget before it is forwarded.

Budget reservations: a call of a team x tool whose grant has a monthly budget takes its share before it is
forwarded, so concurrent calls cannot each find the same budget unspent.

In one short transaction: lock the grant row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
transactions already serialize writers), re-read its budget, sum this UTC month's ModelCall cost for the team x
tool (reservations included), refuse (429) when it is spent, else insert the call's ModelCall row now with a
reserved cost and status_code 0. `metering.record_call` later overwrites that row with the call's real figures
and bodies; a call that never ends (a crashed worker) keeps its reservation, which errs on the safe side.

The reserved cost is the model's price of (request bytes / 4) input tokens and the request's output cap
(`max_tokens` / `max_output_tokens` / `max_completion_tokens`; 4096 when absent, at most 128k) output tokens.
Calls of a grant without a budget never come here: no extra query.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from django.db import connection, transaction
from django.utils import timezone

from ..models import AccessGrant, GrantState, ModelCall
from .context import CallerState
from .errors import GatewayError
from .metering import month_start
from .pricing import cost_usd
from .rows import insert_row

CENTS = Decimal("0.01")
DEFAULT_OUTPUT_TOKENS = 4096
MAX_OUTPUT_TOKENS = 128_000
_OUTPUT_CAPS = ("max_tokens", "max_output_tokens", "max_completion_tokens")


def reserved_cost(model: str, body_bytes: int, payload: dict) -> Decimal:
    output = DEFAULT_OUTPUT_TOKENS
    for name in _OUTPUT_CAPS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            output = min(value, MAX_OUTPUT_TOKENS)
            break
    return cost_usd(model, input_tokens=body_bytes // 4, output_tokens=output)


@lru_cache(maxsize=4)
def _sql(vendor: str) -> tuple[str, str]:
    """(lock the grant and read its budget, the month's spend). Params: team, tool, now / team, tool, start."""
    q = connection.ops.quote_name

    def c(model, field: str) -> str:
        return q(model._meta.get_field(field).column)

    lock = (
        f"SELECT {c(AccessGrant, 'budget_usd')} FROM {q(AccessGrant._meta.db_table)}"
        f" WHERE {c(AccessGrant, 'team')} = %s AND {c(AccessGrant, 'tool')} = %s"
        f" AND {c(AccessGrant, 'state')} = '{GrantState.ACTIVE.value}' AND {c(AccessGrant, 'permission')} IS NOT NULL"
        f" AND ({c(AccessGrant, 'expires_at')} IS NULL OR {c(AccessGrant, 'expires_at')} > %s)"
    )
    if connection.features.has_select_for_update:
        lock += " FOR UPDATE"
    spend = (
        f"SELECT COALESCE(SUM({c(ModelCall, 'cost_usd')}), 0) FROM {q(ModelCall._meta.db_table)}"
        f" WHERE {c(ModelCall, 'team')} = %s AND {c(ModelCall, 'tool')} = %s AND {c(ModelCall, 'created_at')} >= %s"
    )
    return lock, spend


def reserve(
    state: CallerState, *, protocol: str, model: str, streamed: bool, body: bytes, payload: dict
) -> ModelCall | None:
    """The call's row with its reserved cost, or GatewayError (429) when the budget is spent; None when the
    grant no longer has a budget (changed since the call was read)."""
    team_id, tool_id = state.team.pk, state.tool.pk
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    lock, spend = _sql(connection.vendor)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(lock, [team_id, tool_id, adapt(now)])
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return None
            budget = Decimal(str(row[0])).quantize(CENTS)  # SQLite returns a float
            cursor.execute(spend, [team_id, tool_id, adapt(month_start(now))])
            spent = Decimal(str(cursor.fetchone()[0] or 0))
        if spent >= budget:
            raise GatewayError(
                429,
                "budget_spent",
                f"monthly budget of ${budget} for {state.tool.slug} spent (team {state.team.slug}: "
                f"${spent:.2f} this UTC month)",
            )
        return insert_row(
            ModelCall(
                run=state.run,
                workspace=state.workspace,
                team_id=team_id,
                tool_id=tool_id,
                protocol=protocol,
                model=model[:200],
                streamed=streamed,
                status_code=0,
                cost_usd=reserved_cost(model, len(body), payload),
                request_body=body,
            )
        )
