"""Cut periods stored on first use: the days of a week or month a report's range covers but does not fill.

A range over every team that starts on a Thursday reads its whole weeks from the stored period reports
(`stored`); its first week's days are computed live (30 ms of the 50 ms budget over 200 teams). Such ranges
repeat all day ("the last 28 days" on a dashboard), so the first request asks a worker to store that cut
(`request_cut_reports` -> task `store_cut_report`), and later requests read it like a whole period while
its fingerprint holds (`stored_read`). The cut holds its rows' JSON, its folds with their distinct users
(as UsagePeriodTotal) and one row per team x tool (for vendor peaks and unused seats). The rollup deletes
cuts whose days it rebuilds, whose fingerprint no longer holds, or that are older than CUT_KEEP (`forget_cuts`);
they are stored again when asked for. At most CUT_MAX cuts are kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import RollupState, UsagePeriodCut
from .live import report_ctes
from .params import ReportParams
from .periods import Period, period_last_day, period_of, periods, whole_periods
from .rowsql import PERIOD_COLUMNS, Dialect
from .stored import folds_sql, inputs_key_sql, is_stored

log = logging.getLogger(__name__)

CUT_KEEP = dt.timedelta(days=7)  # a cut not rewritten for this long is dropped (stored again when asked for)
# at most this many cuts are kept (the oldest written go first): a cut holds a period's rows' JSON (a few MB
# over 200 teams), and every distinct range an auditor asks for would otherwise add one
CUT_MAX = 32
ASK_AGAIN_S = 300  # one request per cut per five minutes, however many reports ask for it


def cut_match_sql(d: Dialect, cuts: list[Period], alias: str = "") -> tuple[str, list[Any]]:
    """`(start, first_day, last_day) is one of cuts` (kind is matched by the caller)."""
    a = f"{alias}." if alias else ""
    one = f"({a}start = {d.date} AND {a}first_day = {d.date} AND {a}last_day = {d.date})"
    return "(" + " OR ".join([one] * len(cuts)) + ")", [v for cut in cuts for v in cut]


def held_cuts(kind: str, cuts: list[Period]) -> list[Period]:
    """The cuts that have a stored report (whether it still holds is the report statement's to check)."""
    if not cuts:
        return []
    match = Q()
    for start, first, last in cuts:
        match |= Q(start=start, first_day=first, last_day=last)
    overall = UsagePeriodCut.objects.filter(match, kind=kind, team_slug="*", tool_slug="*")
    found = set(overall.values_list("start", "first_day", "last_day"))
    return [cut for cut in cuts if cut in found]


def request_cut_reports(kind: str, cuts: list[Period], today: dt.date) -> None:
    """Ask a worker to store these cuts (once per cut per ASK_AGAIN_S). The report never waits for it, and a
    broker that is down only means the next request computes the cut live again."""
    from ..tasks.reports import store_cut_report  # a service enqueuing its own task

    for start, first, last in cuts:
        if not is_stored(start, today):
            continue
        if not cache.add(f"goldpath:cut:{kind}:{first}:{last}", 1, ASK_AGAIN_S):
            continue
        try:
            store_cut_report.delay(kind, start.isoformat(), first.isoformat(), last.isoformat())
        except Exception:  # noqa: BLE001 - the report is served live either way
            cache.delete(f"goldpath:cut:{kind}:{first}:{last}")
            log.warning("could not ask a worker to store the %s cut %s..%s", kind, first, last, exc_info=True)


def check_cut(kind: str, first: dt.date, last: dt.date, today: dt.date) -> Period:
    """The cut (key, first, last) if first..last is one week's or month's days, not all of them; else ValueError."""
    if kind not in ("week", "month"):
        raise ValueError(f"a cut is of a week or a month, not {kind!r}")
    start = period_of(first, kind)
    try:
        end = period_last_day(kind, start)
    except OverflowError:
        raise ValueError(f"{first}..{last} is beyond the calendar") from None
    if last < first or last > end:
        raise ValueError(f"{first}..{last} is not within one {kind}")
    params = ReportParams(date_from=first, date_to=last, granularity=kind)
    whole, _ = whole_periods(params, periods(params), today)
    if whole:
        raise ValueError(f"{first}..{last} is a whole {kind}: its stored period report serves it")
    return start, first, last


def store_cut_report(kind: str, first: dt.date, last: dt.date, *, now: dt.datetime | None = None) -> bool:
    """Write the cut's report (its rows' JSON, folds and team x tool rows), unless one that holds is stored.
    Returns whether it wrote. Takes the rollup's lock, so a cut is never written from days being rebuilt."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    start, first, last = check_cut(kind, first, last, today)
    if not is_stored(start, today):
        return False
    d = Dialect()
    table = UsagePeriodCut._meta.db_table
    with transaction.atomic():
        state, _ = RollupState.objects.get_or_create(name="usage")
        RollupState.objects.select_for_update().filter(pk=state.pk).first()
        with connection.cursor() as cur:
            cur.execute(f"SELECT {inputs_key_sql(d)}")
            key = cur.fetchone()[0]
            held = UsagePeriodCut.objects.filter(
                kind=kind, start=start, first_day=first, last_day=last, team_slug="*", tool_slug="*"
            )
            if held.filter(inputs_key=key).exists():
                return False
            UsagePeriodCut.objects.filter(kind=kind, start=start, first_day=first, last_day=last).delete()
            params = ReportParams(date_from=first, date_to=last, granularity=kind)
            _, st, rows, rargs = report_ctes(params, None, periods(params), today, now)
            cols = ", ".join(PERIOD_COLUMNS)
            fold_names, folds = folds_sql(d, by_period=False)
            names = f"{cols}, reported_users, seat_cost, active_users, inputs_key, rows_json"
            # the folds, and on the overall row the cut's rows' JSON and the fingerprint; then the pair rows
            overall = "CASE WHEN f.team = '*' AND f.tool = '*' THEN {} END"
            rows_text = f"COALESCE({rows}, '')"
            head = f"%s, {d.date}, {d.date}, {d.date}"
            written = connection.ops.adapt_datetimefield_value(now)
            cur.execute(
                f"INSERT INTO {table} (kind, start, first_day, last_day, team_slug, tool_slug, {names}, written_at) "
                f"WITH {', '.join(st.ctes)}, f({fold_names}) AS ({folds}) "
                f"SELECT {head}, f.team, f.tool, {', '.join(f'f.{c}' for c in PERIOD_COLUMNS)}, f.rep, f.seat, u.n, "
                f"COALESCE({overall.format('%s')}, ''), {overall.format(rows_text)}, "
                f"%s FROM f LEFT JOIN users u ON u.p = {d.date} AND u.team = f.team AND u.tool = f.tool "
                f"UNION ALL SELECT {head}, r.team, r.tool, {', '.join(f'r.{c}' for c in PERIOD_COLUMNS)}, r.rep, "
                f"r.seat, NULL, '', NULL, %s FROM r",
                [*st.args, kind, start, first, last, key, *rargs, written, start, kind, start, first, last, written],
            )
        _evict_beyond(CUT_MAX)
    return True


def _evict_beyond(limit: int) -> None:
    overall = UsagePeriodCut.objects.filter(team_slug="*", tool_slug="*").order_by("-written_at", "-pk")
    for kind, start, first, last in overall.values_list("kind", "start", "first_day", "last_day")[limit:]:
        UsagePeriodCut.objects.filter(kind=kind, start=start, first_day=first, last_day=last).delete()


def forget_cuts(days: list[dt.date], *, now: dt.datetime | None = None) -> int:
    """Delete the stored cuts the rollup has made stale: those holding any of the rebuilt `days`, those whose
    fingerprint no longer holds, and those written longer than CUT_KEEP ago. Returns how many cuts went."""
    now = now or timezone.now()
    cuts = UsagePeriodCut.objects.all()
    names = ("kind", "start", "first_day", "last_day")
    gone = set()
    if days:
        rebuilt = set(days)
        for kind, start, first, last in (
            cuts.filter(first_day__lte=max(rebuilt), last_day__gte=min(rebuilt)).values_list(*names).distinct()
        ):
            if any(first + dt.timedelta(days=i) in rebuilt for i in range((last - first).days + 1)):
                gone.add((kind, start, first, last))
    overall = cuts.filter(team_slug="*", tool_slug="*")
    if overall.exists():
        with connection.cursor() as cur:
            cur.execute(f"SELECT {inputs_key_sql(Dialect())}")
            key = cur.fetchone()[0]
        gone |= set(overall.exclude(inputs_key=key).values_list(*names))
        gone |= set(overall.filter(written_at__lt=now - CUT_KEEP).values_list(*names))
    for kind, start, first, last in gone:
        cuts.filter(kind=kind, start=start, first_day=first, last_day=last).delete()
    return len(gone)
