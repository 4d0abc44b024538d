"""GOLDPATH_HOME is private: real portal processes create it 0700/0600, tighten an old loose one, and keep
their generated SECRET_KEY and Fernet key there; vendor keys of older versions still decrypt."""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.conf import settings

from catalog.agents import crypto
from catalog.conf import goldpath_home
from catalog.homefiles import HomeError, read_or_create_secret, secure_home
from catalog.models import Repository, VendorApiKey
from tests.factories import TeamFactory, ToolFactory

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "from django.conf import settings; from catalog.agents import crypto; "
    "print(settings.SECRET_KEY); print(crypto.encrypt('sk-test-1234'))"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The embedded defaults (SQLite, file-system broker) in `home`: no database or broker of the test run."""
    drop = ("DJANGO_", "DATABASE_URL", "CELERY_", "GOLDPATH_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**base, "GOLDPATH_HOME": str(home), **extra}


def _manage(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _shown(output: str) -> list[str]:
    """SECRET_KEY and a ciphertext printed by SHOW (the last two lines; the shell may print a banner)."""
    return output.strip().splitlines()[-2:]


def _loose_entries(home: Path) -> list[str]:
    """Everything under `home` (links themselves) with a group/other bit."""
    loose = []
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if stat.S_IMODE(path.lstat().st_mode) & 0o077 and not path.is_symlink():
                loose.append(f"{path.relative_to(home)} {oct(stat.S_IMODE(path.lstat().st_mode))}")
    return loose


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_fresh_home_is_created_private_with_generated_keys(tmp_path):
    home = tmp_path / "home"
    _manage(home, "migrate", "--no-input")
    first = _shown(_manage(home, "shell", "-c", SHOW).stdout)
    assert _mode(home) == 0o700
    assert _mode(home / "goldpath.sqlite3") == 0o600
    assert _mode(home / "keys" / "django-secret-key") == 0o600
    assert _mode(home / "keys" / "fernet.key") == 0o600
    assert _loose_entries(home) == []
    # a random key, not the constant every install used to share; the same on the next start
    secret, token = first
    assert secret != crypto.LEGACY_DEMO_SECRET_KEY and len(secret) >= 50
    assert secret == (home / "keys" / "django-secret-key").read_text().strip()
    second = _shown(_manage(home, "shell", "-c", SHOW).stdout)
    assert second[0] == secret
    # the Fernet key is its own key (not derived from SECRET_KEY) and is stable too
    fernet_key = (home / "keys" / "fernet.key").read_bytes().strip()
    assert fernet_key != crypto.legacy_key(secret)
    assert Fernet(fernet_key).decrypt(token.encode()) == b"sk-test-1234"
    assert Fernet(fernet_key).decrypt(second[1].encode()) == b"sk-test-1234"


def test_an_existing_loose_home_is_tightened_without_following_links(tmp_path):
    home = tmp_path / "home"
    (home / "terraform" / "ws1").mkdir(parents=True)
    state = home / "terraform" / "ws1" / "terraform.tfstate"
    state.write_text("{}")
    db = home / "goldpath.sqlite3"
    db.write_text("")
    setgid_dir = home / "mail"
    setgid_dir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not Goldpath's")
    outside_dir = tmp_path / "shared"
    (outside_dir / "sub").mkdir(parents=True)
    for path, mode in ((home, 0o755), (home / "terraform", 0o755), (home / "terraform" / "ws1", 0o775)):
        path.chmod(mode)
    state.chmod(0o644)
    db.chmod(0o666)
    setgid_dir.chmod(0o2775)
    outside.chmod(0o644)
    outside_dir.chmod(0o755)
    (outside_dir / "sub").chmod(0o755)
    (home / "link-out").symlink_to(outside)
    (home / "terraform" / "link-dir").symlink_to(outside_dir)

    _manage(home, "check")

    assert _mode(home) == 0o700
    assert _mode(home / "terraform") == 0o700 and _mode(home / "terraform" / "ws1") == 0o700
    assert _mode(state) == 0o600 and _mode(db) == 0o600
    assert _mode(setgid_dir) == 0o700
    assert _loose_entries(home) == []
    # links are not followed: their targets are not Goldpath's
    assert _mode(outside) == 0o644
    assert _mode(outside_dir) == 0o755 and _mode(outside_dir / "sub") == 0o755
    assert state.read_text() == "{}"


def test_production_settings_use_thecurrent_keys(tmp_path):
    home = tmp_path / "home"
    key = Fernet.generate_key().decode()
    result = _manage(
        home,
        "shell",
        "-c",
        SHOW,
        DJANGO_SECRET_KEY="configured-" + "k" * 60,
        GOLDPATH_FERNET_KEY=key,
    )
    secret, token = _shown(result.stdout)
    assert secret == "configured-" + "k" * 60
    assert Fernet(key.encode()).decrypt(token.encode()) == b"sk-test-1234"
    assert not (home / "keys" / "django-secret-key").exists() and not (home / "keys" / "fernet.key").exists()
    assert _mode(home) == 0o700 and _loose_entries(home) == []


def test_processes_starting_together_end_with_one_key(tmp_path):
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", SHOW],
            cwd=ROOT,
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    secrets_seen = {_shown(out)[0] for out, _err in outputs}
    assert len(secrets_seen) == 1
    fernet_key = (home / "keys" / "fernet.key").read_bytes().strip()
    for out, _err in outputs:
        assert Fernet(fernet_key).decrypt(_shown(out)[1].encode()) == b"sk-test-1234"
    assert sorted(p.name for p in (home / "keys").iterdir()) == ["django-secret-key", "fernet.key"]


@pytest.mark.parametrize("module", ["portal.wsgi", "portal.celery", "portal.settings"])
def test_web_server_and_worker_entry_points_set_a_private_umask(tmp_path, module):
    code = f"import os, {module}; print(oct(os.umask(0)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path / "home", DJANGO_SETTINGS_MODULE="portal.settings"),
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0o77"


def test_a_shared_folder_is_refused_as_home(tmp_path):
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(HomeError, match="shared folder"):
        secure_home(shared)
    assert _mode(shared) == 0o1777


def test_read_or_create_secret_keeps_the_first_key(tmp_path):
    path = tmp_path / "keys" / "k"
    assert read_or_create_secret(path, lambda: b"first") == b"first"
    assert read_or_create_secret(path, lambda: b"second") == b"first"
    assert _mode(path) == 0o600 and list(path.parent.iterdir()) == [path]


# --- vendor keys written by older versions ------------------------------------------------------
def _migration():
    return importlib.import_module("catalog.migrations.0012_vendor_keys_fernet")


@pytest.mark.django_db
def test_legacy_vendor_keys_decrypt_and_are_reencrypted_by_the_migration():
    team, tool = TeamFactory(slug="payments"), ToolFactory(slug="claude-code")
    legacy = Fernet(crypto.legacy_key(crypto.LEGACY_DEMO_SECRET_KEY))
    key = VendorApiKey.objects.create(
        team=team,
        tool=tool,
        env_var="ANTHROPIC_API_KEY",
        ciphertext=legacy.encrypt(b"sk-ant-legacy-0001").decode(),
        last4="0001",
    )
    other = VendorApiKey.objects.create(
        team=TeamFactory(slug="search"),
        tool=tool,
        env_var="ANTHROPIC_API_KEY",
        ciphertext=Fernet(crypto.legacy_key(settings.SECRET_KEY)).encrypt(b"sk-ant-legacy-0002").decode(),
        last4="0002",
    )
    repo = Repository.objects.create(
        slug="app", name="App", url="/srv/app.git", credential_ciphertext=legacy.encrypt(b"ghp_legacy").decode()
    )
    lost = VendorApiKey.objects.create(
        team=TeamFactory(slug="platform"),
        tool=tool,
        env_var="X",
        ciphertext=Fernet(Fernet.generate_key()).encrypt(b"unknown key").decode(),
    )
    # before the migration: still readable (MultiFernet with the legacy derivations)
    assert crypto.decrypt(key.ciphertext) == "sk-ant-legacy-0001"

    _migration().reencrypt_secrets(django_apps, None)

    current = Fernet(crypto.current_key())
    for obj, plain in ((key, b"sk-ant-legacy-0001"), (other, b"sk-ant-legacy-0002")):
        old = obj.ciphertext
        obj.refresh_from_db()
        assert obj.ciphertext != old
        assert current.decrypt(obj.ciphertext.encode()) == plain  # the current key alone reads it now
        assert crypto.decrypt(obj.ciphertext) == plain.decode()
    repo.refresh_from_db()
    assert current.decrypt(repo.credential_ciphertext.encode()) == b"ghp_legacy"
    old_lost = lost.ciphertext
    lost.refresh_from_db()
    assert lost.ciphertext == old_lost  # unreadable values are left alone, never a failed migrate
    # new values use the current key, which is not derived from SECRET_KEY
    assert current.decrypt(crypto.encrypt("new").encode()) == b"new"
    assert crypto.current_key() != crypto.legacy_key(settings.SECRET_KEY)


def test_the_fernet_key_file_is_private_in_the_test_home():
    path = crypto.fernet_key_path()
    crypto.encrypt("x")
    assert path.exists() and _mode(path) == 0o600
    assert _mode(goldpath_home()) == 0o700
