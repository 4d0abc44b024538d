"""The catalog from the terminal: listing tools (all, usable) and asking for access."""

from __future__ import annotations

import pytest

from catalog.models import AccessRequest
from tests.workspace_helpers import granted_tools

pytestmark = pytest.mark.django_db(transaction=True)


def test_tools_list_json_and_usable(goldpath, people, teams):
    granted_tools(people, teams)  # claude-code and aider granted to payments; copilot approved, not granted
    goldpath.login("alice")
    every = goldpath("tools", "list", "--json")
    assert every.code == 0, every
    assert sorted(t["slug"] for t in every.json) == ["aider", "claude-code", "copilot"]
    assert {t["status"] for t in every.json} == {"approved"}
    usable = goldpath("tools", "list", "--usable", "--json")
    assert sorted(t["slug"] for t in usable.json) == ["aider", "claude-code"]
    table = goldpath("tools", "list", "--usable")
    assert table.code == 0 and "Claude Code" in table.out and "Copilot" not in table.out
    assert "TOOL" in table.out and "STATUS" in table.out


def test_access_request_creates_a_pending_request(goldpath, people, teams):
    granted_tools(people, teams)
    goldpath.login("alice")
    result = goldpath("access", "request", "copilot", "--team", "payments", "--why", "Pairing on the ledger")
    assert result.code == 0, result
    request = AccessRequest.objects.get()
    assert (request.tool.slug, request.team.slug, request.requester.username) == ("copilot", "payments", "alice")
    assert request.justification == "Pairing on the ledger" and request.status == "pending"
    assert f"request #{request.pk} is pending" in result.out
    # a tool the team already holds: the portal's 409 message, exit 1, nothing created
    again = goldpath("access", "request", "claude-code", "--team", "payments", "--why", "more", "--json")
    assert again.code == 1 and again.out == ""
    assert "Error: Team payments already holds a grant for Claude Code." in again.err
    assert AccessRequest.objects.count() == 1


def test_access_request_field_errors_are_printed(goldpath, people, teams):
    granted_tools(people, teams)
    goldpath.login("alice")
    result = goldpath("access", "request", "copilot", "--team", "nowhere", "--why", "x")
    assert result.code == 1
    assert "team: Object with slug=nowhere does not exist." in result.err
    assert not AccessRequest.objects.exists()
    missing = goldpath("access", "request", "copilot", "--why", "x")
    assert missing.code == 2 and "--team" in missing.err
