"""`seed_demo` builds the demo organisation once; a second run changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from catalog import permissions
from catalog.models import AITool, AuditEvent, Team

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_realistic(settings):
    settings.DEBUG = True
    call_command("seed_demo", verbosity=0)
    counts = (AITool.objects.count(), Team.objects.count(), AuditEvent.objects.count())
    call_command("seed_demo", verbosity=0)
    assert (AITool.objects.count(), Team.objects.count(), AuditEvent.objects.count()) == counts
    assert {t.slug for t in Team.objects.all()} >= {"platform", "payments", "search"}
    statuses = dict(AITool.objects.values_list("slug", "status"))
    assert sum(1 for s in statuses.values() if s == "approved") >= 4
    assert {"claude-code", "codex-cli", "aider", "github-copilot", "cursor", "gemini-cli", "continue"} <= set(statuses)
    assert len(set(statuses.values())) >= 3
    roles = {
        u: permissions.role_of(authenticate(username=u, password="goldpath"))
        for u in ("alice", "dave", "bob", "frank", "carol", "erin", "admin")
    }
    assert roles == {
        "alice": "developer",
        "dave": "developer",
        "bob": "platform_engineer",
        "frank": "platform_engineer",
        "carol": "manager",
        "erin": "auditor",
        "admin": "admin",
    }
    assert Team.objects.get(slug="payments").members.filter(username="alice").exists()
    assert set(Team.objects.filter(managers__username="carol").values_list("slug", flat=True)) == {"payments", "search"}
    cursor = AITool.objects.get(slug="cursor")
    assert cursor.status == "in_review" and cursor.proposed_by.username == "alice"


def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", verbosity=0)
    assert not AITool.objects.exists()


def test_seed_demo_grants(settings):
    from catalog.models import AccessGrant
    from catalog.policy import decide

    settings.DEBUG = True
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    held = set(AccessGrant.objects.filter(state="active").values_list("team__slug", "tool__slug"))
    assert held == {
        ("payments", "claude-code"),
        ("payments", "aider"),
        ("search", "codex-cli"),
        ("payments", "demo-agent"),
        ("search", "demo-agent"),
    }
    demo_agent = AITool.objects.get(slug="demo-agent")
    assert (demo_agent.status, demo_agent.risk_tier, demo_agent.max_data_classification) == (
        "approved",
        "low",
        "confidential",
    )
    assert "offline demo" in demo_agent.name and "offline demo" in demo_agent.description
    assert demo_agent.versions.get().launch_command[:3] == ["python3", "-m", "catalog.demo_agent"]
    ungranted = AITool.objects.filter(status="approved").exclude(grants__state="active")
    assert {"github-copilot", "continue"} <= set(ungranted.values_list("slug", flat=True))
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    assert decide(alice, AITool.objects.get(slug="claude-code")).allowed
    assert decide(alice, AITool.objects.get(slug="codex-cli")).codes == ["no_grant"]


def test_seed_demo_registers_the_demo_repository(settings, tmp_path):
    """A real git repository under GOLDPATH_HOME/repositories, registered for payments and search."""
    import os
    import stat
    import subprocess

    from catalog.models import Repository
    from catalog.repository_urls import check_at_use

    settings.DEBUG = True
    settings.GOLDPATH = {**settings.GOLDPATH, "HOME": tmp_path}
    call_command("seed_demo", verbosity=0)
    path = tmp_path / "repositories" / "demo"
    head = (path / ".git" / "HEAD").read_text()
    call_command("seed_demo", verbosity=0)  # idempotent: the repository and its commit are left as they are
    assert (path / ".git" / "HEAD").read_text() == head
    repo = Repository.objects.get()
    assert (repo.slug, repo.name, repo.url, repo.data_classification, repo.default_branch) == (
        "demo",
        "Demo service",
        str(path),
        "internal",
        "main",
    )
    assert sorted(repo.teams.values_list("slug", flat=True)) == ["payments", "search"]
    assert repo.is_local and repo.credential() == "" and repo.created_by.username == "bob"
    assert AuditEvent.objects.filter(verb="repository.created").count() == 1
    check_at_use(repo.url)

    def git(*args: str) -> str:
        env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        return subprocess.run(
            ["git", "-C", str(path), *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git("log", "--format=%cn|%an").splitlines() == ["Goldpath demo|Goldpath demo"]
    assert sorted(git("ls-files").split()) == ["README.md", "app.py"]
    assert git("status", "--porcelain") == ""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path / "app.py").st_mode) == 0o600
    hooks = path / ".git" / "hooks"
    assert not hooks.exists() or not any(hooks.iterdir())  # no sample hooks from a template
