"""`goldpath provenance verify SHA`: check a commit's signed provenance statement here, not on the portal.

The statement is canonical JSON (sorted keys, no spaces) signed with the portal's Ed25519 key. The CLI
recomputes that text, checks the signature with the public key (the portal's, or one you hold: `--key`),
and checks that the signed subject is the commit you asked about."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .client import Client
from .errors import ApiError, CliError
from .output import JsonOption, err, print_json, say

app = typer.Typer(help="Signed provenance of accepted agent changes.", no_args_is_help=True)


def canonical(statement: dict[str, Any]) -> bytes:
    """The exact bytes the portal signs (catalog.agents.provenance.canonical)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_key_file(path: Path) -> Ed25519PublicKey:
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CliError(f"--key {path}: not a PEM public key ({exc}).") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise CliError(f"--key {path}: not an Ed25519 public key.")
    return public


def portal_key(data: dict[str, Any]) -> Ed25519PublicKey:
    if data.get("algorithm", "ed25519") != "ed25519":
        raise CliError(f"The portal's provenance key is {data.get('algorithm')}, not Ed25519.")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data["public_key"]))
    except (KeyError, ValueError, binascii.Error) as exc:
        raise CliError(f"The portal sent an unusable provenance key: {exc}") from exc


def check(record: dict[str, Any], public: Ed25519PublicKey, sha: str) -> tuple[list[str], list[str]]:
    """(checks passed, problems) for the record against the key and the commit asked about."""
    checks: list[str] = []
    problems: list[str] = []
    statement = record.get("statement") or {}
    trusted = key_id(public)
    if record.get("key_id") != trusted:
        problems.append(f"signed with key {str(record.get('key_id'))[:16]}..., not the trusted key {trusted[:16]}...")
    try:
        public.verify(base64.b64decode(record.get("signature") or ""), canonical(statement))
        checks.append(f"Ed25519 signature valid (key {trusted[:16]}...)")
    except (InvalidSignature, ValueError, binascii.Error):
        problems.append("the signature does not match the statement: it was altered, or signed with another key")
    subject = (statement.get("subject") or [{}])[0]
    signed_commit = str((subject.get("digest") or {}).get("gitCommit") or "")
    if not signed_commit.startswith(sha.lower()):
        problems.append(f"the signed statement is about commit {signed_commit[:12] or 'none'}, not {sha}")
    elif sha.lower() != signed_commit:
        # a prefix names no commit: anyone can make a commit that shares a short one with an agent's commit
        problems.append(
            f"{sha} is only a prefix of the signed commit {signed_commit}, which another commit can share: "
            f"verify the full hash (git rev-parse {sha})"
        )
    elif record.get("commit") != signed_commit:
        problems.append(f"the portal's record names commit {record.get('commit')}, the signature {signed_commit}")
    else:
        checks.append(f"signed subject is commit {signed_commit}")
    predicate = statement.get("predicate") or {}
    signed_prompt = (predicate.get("prompt") or {}).get("sha256")
    if record.get("prompt") is not None and signed_prompt:
        if hashlib.sha256(str(record["prompt"]).encode()).hexdigest() == signed_prompt:
            checks.append("the prompt shown matches the signed prompt digest")
        else:
            problems.append("the prompt the portal shows differs from the signed prompt digest")
    return checks, problems


def attested(record: dict[str, Any]) -> list[tuple[str, str]]:
    """What a valid statement attests, as (label, value) lines; taken from the signed statement only."""
    statement = record.get("statement") or {}
    subject = (statement.get("subject") or [{}])[0]
    p = statement.get("predicate") or {}
    tool = p.get("tool") or {}
    agent = p.get("agent") or {}
    usage = p.get("usage") or {}
    timings = p.get("timings") or {}
    prompt = str(record.get("prompt") or "").strip().splitlines()
    return [
        (
            "commit",
            f"{(subject.get('digest') or {}).get('gitCommit')} (tree {(subject.get('digest') or {}).get('gitTree')})",
        ),
        ("branch", str(subject.get("name"))),
        (
            "prompt",
            f"{prompt[0][:100] if prompt else '-'} (sha256 {(p.get('prompt') or {}).get('sha256', '')[:16]}...)",
        ),
        ("requested by", f"{p.get('requester')} (team {p.get('team')})"),
        ("agent", f"{agent.get('identity')} (group {agent.get('group')}, run {agent.get('run')})"),
        ("tool", f"{tool.get('slug')}@{tool.get('version')}"),
        ("models", ", ".join(p.get("models") or []) or "-"),
        (
            "model calls",
            f"{usage.get('model_calls', 0)} ({usage.get('input_tokens', 0)} in / "
            f"{usage.get('output_tokens', 0)} out tokens, ${usage.get('cost_usd', 0)})",
        ),
        ("base commit", str(p.get("base_commit"))),
        ("diff sha256", str(p.get("diff_sha256"))),
        (
            "sandbox",
            f"policy {str((p.get('sandbox') or {}).get('policy_hash'))[:16]}..., "
            f"network {(p.get('sandbox') or {}).get('network_policy')}",
        ),
        ("accepted at", str(timings.get("accepted_at"))),
    ]


@app.command("verify")
def verify(
    sha: Annotated[str, typer.Argument(help="The commit's full hash (a prefix finds the record, never verifies).")],
    key: Annotated[
        Path | None, typer.Option("--key", help="A PEM Ed25519 public key you trust (default: fetch the portal's).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Verify the signed provenance of a commit locally and show what it attests; exit 1 unless it verifies."""
    trusted_key = load_key_file(key) if key else None
    with Client.from_config() as client:
        try:
            record = client.get("provenance/", {"commit": sha})
        except ApiError as exc:
            if exc.status == 404:
                raise CliError(f"No provenance record for commit {sha}: {exc.message}") from exc
            raise
        public = trusted_key or portal_key(client.get("provenance/key/"))
    checks, problems = check(record, public, sha)
    if json_output:
        print_json(
            {
                "verified": not problems,
                "commit": record.get("commit"),
                "key_id": key_id(public),
                "key_source": str(key) if key else "portal",
                "checks": checks,
                "problems": problems,
                "statement": record.get("statement"),
            }
        )
    else:
        for line in checks:
            say(f"ok   {line}")
        for line in problems:
            err.print(f"FAIL {line}", style="red", markup=False)
        if not problems:
            say(f"Provenance of {record.get('commit')} verified. It attests:")
            for label, value in attested(record):
                say(f"  {label:<13} {value}")
    if problems:
        raise CliError(f"Provenance of {sha} is NOT verified.")
