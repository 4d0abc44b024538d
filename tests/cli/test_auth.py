"""Signing in from the terminal: the token file, wrong passwords, the environment, expired and revoked tokens."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys

import pytest
from rest_framework.authtoken.models import Token

from catalog.models import AuditEvent
from tests.cli.conftest import GOLDPATH
from tests.factories import ToolFactory

pytestmark = pytest.mark.django_db(transaction=True)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_with_password_stdin_stores_the_token_0600(goldpath, people):
    result = goldpath.login("alice")
    assert f"Signed in to {goldpath.url} as alice" in result.out
    config = goldpath.config_dir / "config.json"
    assert mode(config) == 0o600 and mode(goldpath.config_dir) == 0o700
    stored = json.loads(config.read_text())
    assert stored["url"] == goldpath.url and stored["username"] == "alice"
    assert stored["token"] == Token.objects.get(user=people["alice"]).key
    assert stored["token"] not in result.out + result.err  # never printed

    who = goldpath("whoami", "--json")
    assert who.code == 0, who
    assert who.json["username"] == "alice" and who.json["role"] == "developer" and who.json["teams"] == ["payments"]
    assert who.json["token_expires"]
    human = goldpath("whoami")
    assert "alice on " in human.out and "developer" in human.out and "payments" in human.out


def test_login_prompts_for_username_and_password(goldpath, people):
    # no --password-stdin: the password is prompted for (read from the terminal, here its stdin)
    result = goldpath("login", "--url", goldpath.url, stdin="bob\ncorrect-horse-42\n")
    assert result.code == 0, result
    assert "as bob" in result.out
    assert "correct-horse-42" not in result.out + result.err


def test_wrong_password_is_a_readable_error(goldpath, people):
    result = goldpath("login", "--url", goldpath.url, "-u", "alice", "--password-stdin", stdin="nope\n")
    assert result.code == 1
    assert "Unable to log in with provided credentials." in result.err
    assert "Traceback" not in result.err
    assert not (goldpath.config_dir / "config.json").exists()
    assert not Token.objects.filter(user=people["alice"]).exists()
    assert AuditEvent.objects.filter(verb="auth.login_failed").exists()


def test_commands_need_a_sign_in(goldpath, people):
    result = goldpath("tools", "list")
    assert result.code == 1 and "No portal configured" in result.err and "goldpath login" in result.err
    result = goldpath("tools", "list", env={"GOLDPATH_URL": goldpath.url})
    assert result.code == 1 and "Not signed in" in result.err


def test_unreachable_portal_is_named(goldpath):
    result = goldpath("tools", "list", env={"GOLDPATH_URL": "http://127.0.0.1:9", "GOLDPATH_TOKEN": "x"})
    assert result.code == 1 and "Cannot reach the portal at http://127.0.0.1:9" in result.err


def test_environment_overrides_the_stored_sign_in(goldpath, other_user, people):
    ToolFactory(slug="aider", status="approved")
    goldpath.login("alice")
    bob_token = Token.objects.create(user=people["bob"]).key
    env = {"GOLDPATH_TOKEN": bob_token}
    who = goldpath("whoami", "--json", env=env)
    assert who.code == 0, who
    assert who.json["username"] == "bob" and who.json["token_source"] == "GOLDPATH_TOKEN"
    # no config file at all: URL and token from the environment only
    who = other_user("whoami", "--json", env={"GOLDPATH_URL": other_user.url, **env})
    assert who.code == 0 and who.json["username"] == "bob", who
    assert not (other_user.config_dir / "config.json").exists()


def test_stored_token_is_not_sent_to_another_portal(goldpath, people):
    goldpath.login("alice")
    result = goldpath("tools", "list", env={"GOLDPATH_URL": "http://127.0.0.1:9"})
    assert result.code == 1 and "Not signed in to http://127.0.0.1:9" in result.err


def test_expired_token_says_to_sign_in_again(goldpath, people):
    goldpath.login("alice")
    Token.objects.filter(user=people["alice"]).update(created=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    result = goldpath("tools", "list")
    assert result.code == 1
    assert "Token has expired" in result.err and "goldpath login" in result.err
    # signing in again replaces the expired token
    goldpath.login("alice")
    assert goldpath("tools", "list").code == 0


def test_logout_revoke_ends_the_token_everywhere(goldpath, other_user, people):
    goldpath.login("alice")
    token = json.loads((goldpath.config_dir / "config.json").read_text())["token"]
    result = goldpath("logout", "--revoke")
    assert result.code == 0 and "revoked" in result.out, result
    assert not Token.objects.filter(user=people["alice"]).exists()
    stored = json.loads((goldpath.config_dir / "config.json").read_text())
    assert "token" not in stored and stored["url"] == goldpath.url
    again = other_user("tools", "list", env={"GOLDPATH_URL": goldpath.url, "GOLDPATH_TOKEN": token})
    assert again.code == 1
    assert "Invalid token." in again.err and "GOLDPATH_TOKEN" in again.err
    assert goldpath("whoami").code == 1


def test_logout_keeps_the_token_on_the_portal_by_default(goldpath, people):
    goldpath.login("alice")
    assert goldpath("logout").code == 0
    assert Token.objects.filter(user=people["alice"]).exists()
    assert "Not signed in" in goldpath("whoami").err


COMMANDS = [
    [],
    ["login"],
    ["logout"],
    ["whoami"],
    ["tools"],
    ["tools", "list"],
    ["access", "request"],
    ["workspaces"],
    *[["workspaces", verb] for verb in ("list", "create", "start", "stop", "delete")],
    ["shell"],
    ["agents", "run"],
    ["agents", "accept"],
    ["logs"],
    ["provenance", "verify"],
    ["templates", "push"],
    ["reports", "adoption"],
]


def test_every_command_has_help_and_json():
    for command in COMMANDS:
        result = subprocess.run([str(GOLDPATH), *command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: goldpath" in result.stdout
        if command and command not in (["tools"], ["workspaces"], ["shell"]):  # shell relays a terminal, not data
            assert "--json" in result.stdout, command


def test_shell_completion_completes_commands():
    """What bash's completion function asks the script (`goldpath --install-completion` installs that function)."""

    def complete(words: str) -> list[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "_GOLDPATH_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        result = subprocess.run([str(GOLDPATH)], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("goldpath work") == ["workspaces"]
    assert complete("goldpath workspaces cr") == ["create"]
    assert complete("goldpath provenance v") == ["verify"]


def test_the_cli_imports_no_django():
    code = "import sys, catalog.cli.main; sys.exit(1 if any(m.split('.')[0] == 'django' for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
