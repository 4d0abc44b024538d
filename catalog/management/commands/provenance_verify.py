"""`python manage.py provenance_verify <sha>`: check a commit's provenance signature.

It also checks that the commit still matches, and that the run's recorded model calls still hash to the signed
transcript digest.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from ...agents.provenance import verify_record
from ...models import ProvenanceRecord


class Command(BaseCommand):
    help = (
        "Verify the signed provenance record of a commit (signature, commit, tree, trailers, branch, and the "
        "model-call transcript)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("commit", help="commit sha (or a unique prefix of at least 7 characters)")

    def handle(self, *args, commit: str, **options) -> None:
        commit = commit.strip().lower()
        matches = list(ProvenanceRecord.objects.filter(commit_sha__startswith=commit)[:2]) if len(commit) >= 7 else []
        if len(matches) != 1:
            self.stderr.write(f"FAILED: no single provenance record for commit {commit!r}.")
            sys.exit(2)
        record = matches[0]
        result = verify_record(record)
        for check in result.checks:
            self.stdout.write(f"  ok: {check}")
        for line in _model_lines(record.statement.get("predicate", {})):
            self.stdout.write(f"  {line}")
        if not result.ok:
            for problem in result.problems:
                self.stderr.write(f"  FAILED: {problem}")
            self.stderr.write(f"FAILED: the provenance of {record.commit_sha} does not verify.")
            sys.exit(1)
        p = record.statement["predicate"]
        self.stdout.write(
            f"OK: {record.commit_sha} was made by {p['agent']['identity']} ({p['tool']['slug']}@{p['tool']['version']}) "
            f"for {p['requester']} (team {p['team']}), prompt sha256 {p['prompt']['sha256'][:16]}..."
        )


def _model_lines(predicate: dict) -> list[str]:
    """What the statement signed about the run's model calls (nothing for statements from before the gateway)."""
    if not isinstance(predicate, dict) or "transcript_sha256" not in predicate:
        return ["models: not recorded (signed before the model gateway)"]
    usage = predicate.get("usage") or {}
    models = ", ".join(str(m) for m in predicate.get("models") or []) or "none"
    return [
        f"models: {models}",
        f"usage: {usage.get('model_calls', 0)} model calls, {usage.get('input_tokens', 0)} tokens in, "
        f"{usage.get('output_tokens', 0)} out, ${usage.get('cost_usd', '0')}",
        f"transcript sha256: {predicate.get('transcript_sha256') or '(no model calls)'}",
    ]
