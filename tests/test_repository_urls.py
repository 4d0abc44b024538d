"""Which repository locations are accepted: hostile URLs and paths a developer could name are refused."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from catalog.repository_urls import address_forbidden, allowed_hosts, check_at_use, validate_url
from tests.repository_helpers import fresh_home, git_init


@pytest.fixture
def home(settings, tmp_path, monkeypatch) -> Path:
    return fresh_home(settings, tmp_path, monkeypatch)


def allow(settings, value: str) -> None:
    settings.GOLDPATH = {**settings.GOLDPATH, "ALLOWED_GIT_HOSTS": value}


# --- remote URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("  HTTPS://GitHub.COM/org/Repo.git ", "https://github.com/org/Repo.git"),
        ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("ssh://git@gitlab.example.com:2222/org/repo.git", "ssh://git@gitlab.example.com:2222/org/repo.git"),
        ("https://8.8.8.8/org/repo.git", "https://8.8.8.8/org/repo.git"),
        ("https://[2606:4700:4700:0::1111]/r.git", "https://[2606:4700:4700::1111]/r.git"),
    ],
)
def test_public_remote_urls_are_accepted_and_normalized(home, url, expected):
    assert validate_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        # transports that run commands or read the worker's disk
        "file:///etc/passwd",
        "FILE:///work/other-team/repo",
        "ext::sh -c touch% /tmp/pwned",
        "ext::ssh",
        "fd::17",
        "git://github.com/org/repo.git",
        "http://github.com/org/repo.git",
        "ftp://github.com/org/repo.git",
        # scp-like and relative forms
        "git@github.com:org/repo.git",
        "github.com:org/repo.git",
        "relative/path",
        "./repo",
        "-uhttps://github.com/x",
        "",
        "   ",
        # credentials in the URL, option injection through the user or host
        "https://user:secret@github.com/org/repo.git",
        "https://ghp_token@github.com/org/repo.git",
        "ssh://git:secret@github.com/org/repo.git",
        "ssh://-oProxyCommand=touch%20x@github.com/r",
        "ssh://-oProxyCommand=x/r",
        "https://github.com@127.0.0.1/r",
        "ssh://a@b@github.com/r",
        # loopback, private, link-local, multicast, reserved: the worker's own services
        "https://127.0.0.1/r",
        "http://127.0.0.1/x",
        "ssh://git@127.0.0.1:5432/x",
        "https://127.0.0.2/r",
        "https://localhost/r",
        "https://LOCALHOST:6379/r",
        "https://redis.localhost/r",
        "https://10.0.0.5/r",
        "https://172.16.0.1/r",
        "https://192.168.1.1/r",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/r",
        "https://0.0.0.0/r",
        "https://224.0.0.1/r",
        "https://240.0.0.1/r",
        "https://255.255.255.255/r",
        "https://[::1]/r",
        "ssh://git@[::1]:22/r",
        "https://[::]/r",
        "https://[::ffff:127.0.0.1]/r",
        "https://[::ffff:7f00:1]/r",
        "https://[::127.0.0.1]/r",
        "https://[fe80::1]/r",
        "https://[fe80::1%25eth0]/r",
        "https://[fc00::1]/r",
        "https://[fd12:3456::1]/r",
        "https://[ff02::1]/r",
        "https://[2002:7f00:1::]/r",
        "https://[64:ff9b::7f00:1]/r",
        "https://[64:ff9b::a00:1]/r",
        "https://[::1/r",
        # numeric IPv4 spellings the C library and curl read as 127.0.0.1 (or anything)
        "https://2130706433/r",
        "http://2130706433/r",
        "https://0x7f000001/r",
        "https://0x7f.1/r",
        "https://0x7F.0.0.1/r",
        "https://127.1/r",
        "https://0177.0.0.1/r",
        "https://127.0.0.01/r",
        "https://017700000001/r",
        "https://8.8.8.08/r",
        "https://1.2.3.4.5/r",
        "https://github.0x7f/r",
        # host spellings that decode or normalize to loopback elsewhere
        "https://127.0.0.1./r",
        "https://localhost./r",
        "https://%6c%6f%63%61%6c%68%6f%73%74/r",
        "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/r",
        "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/r",
        "https://github.com\\@127.0.0.1/r",
        "https://git hub.com/r",
        "https://github.com/r\nx",
        "https://github.com/r\nhttps://127.0.0.1/x",
        "https://_bad.example/r",
        # ports, paths
        "https://github.com:0/r",
        "https://github.com:99999/r",
        "https://github.com:/r",
        "https://github.com:22a/r",
        "https://github.com",
        "https://github.com/",
        "https://github.com/r?x=1",
        "https://github.com/r#frag",
        "https://github.com/" + "a" * 1000,
    ],
)
def test_hostile_remote_urls_are_refused(home, url):
    with pytest.raises(ValueError) as err:
        validate_url(url)
    assert str(err.value)  # a message a user can read
    with pytest.raises(ValueError):
        check_at_use(url)


def test_scp_like_form_is_refused_with_a_hint(home):
    with pytest.raises(ValueError, match="ssh://"):
        validate_url("git@github.com:org/repo.git")


def test_password_in_url_points_at_the_credential_field(home):
    with pytest.raises(ValueError, match="credential field"):
        validate_url("https://bob:hunter2@github.com/org/repo.git")


def test_non_string_is_refused(home):
    with pytest.raises(ValueError):
        validate_url(None)  # type: ignore[arg-type]


# --- allowed hosts ----------------------------------------------------------------------------


def test_allowed_hosts_lift_the_private_address_check(settings, home):
    allow(settings, "127.0.0.1:3000, git.internal ,[::1]:8443")
    assert validate_url("https://127.0.0.1:3000/org/r.git") == "https://127.0.0.1:3000/org/r.git"
    assert validate_url("ssh://git@git.internal:2222/r") == "ssh://git@git.internal:2222/r"
    assert validate_url("https://[::1]:8443/r") == "https://[::1]:8443/r"
    for url in ("https://127.0.0.1/r", "https://127.0.0.1:3001/r", "https://[::1]/r", "https://localhost:3000/r"):
        with pytest.raises(ValueError):
            validate_url(url)
    # still no numeric tricks, no credentials, no other schemes for an allowed host
    for url in ("https://2130706433:3000/r", "https://u:p@git.internal/r", "http://git.internal/r"):
        with pytest.raises(ValueError):
            validate_url(url)


def test_allowed_hosts_from_the_environment_separated_by_pathsep(settings, home, monkeypatch):
    allow(settings, "")
    monkeypatch.setenv("GOLDPATH_ALLOWED_GIT_HOSTS", os.pathsep.join(["127.0.0.1", "3000", "gitea.localhost"]))
    assert allowed_hosts() == {("127.0.0.1", 3000), ("gitea.localhost", None)}
    assert validate_url("https://127.0.0.1:3000/r")
    assert validate_url("https://gitea.localhost/r")
    with pytest.raises(ValueError):
        validate_url("https://127.0.0.1:3001/r")


def test_default_ports_match_allowed_entries(settings, home):
    allow(settings, "10.1.2.3:22")
    assert validate_url("ssh://git@10.1.2.3/r")
    with pytest.raises(ValueError):
        validate_url("https://10.1.2.3/r")


# --- check at use -----------------------------------------------------------------------------


def _loopback_name() -> str:
    """A DNS name (not localhost) that this machine resolves to a non-public address: its own hostname."""
    name = socket.gethostname().lower()
    try:
        validate_url(f"https://{name}/r")
        infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    except (ValueError, OSError):
        pytest.skip("this machine's hostname is not a usable test name")
    if not any(address_forbidden(ipaddress.ip_address(i[4][0].split("%")[0])) for i in infos):
        pytest.skip("this machine's hostname resolves to a public address")
    return name


def test_a_name_that_resolves_to_loopback_is_refused_at_use(home):
    """The attack: register a harmless-looking name whose DNS points at the worker's 127.0.0.1."""
    url = f"ssh://git@{_loopback_name()}:6379/r"
    assert validate_url(url) == url  # nothing in the text gives it away
    with pytest.raises(ValueError, match="private"):
        check_at_use(url)


def test_an_allowed_name_is_not_resolved(settings, home):
    name = _loopback_name()
    allow(settings, name)
    check_at_use(f"https://{name}/r")


def test_unresolvable_host_is_refused_at_use(home):
    with pytest.raises(ValueError, match="resolved"):
        check_at_use("https://no-such-host.invalid/r")


def test_public_ip_literal_needs_no_dns(home):
    check_at_use("https://8.8.8.8/r")


def test_settings_are_read_again_at_use(settings, home):
    allow(settings, "127.0.0.1:3000")
    url = validate_url("https://127.0.0.1:3000/r")
    check_at_use(url)
    allow(settings, "")
    with pytest.raises(ValueError):
        check_at_use(url)


# --- local paths ------------------------------------------------------------------------------


def test_local_repository_under_goldpath_home(home):
    repo = git_init(home / "repositories" / "svc")
    assert validate_url(str(repo)) == str(repo)
    assert validate_url(f"{repo}/") == str(repo)
    assert validate_url(f"{home}/repositories/./svc") == str(repo)
    assert validate_url(f"/{repo}") == str(repo)  # a leading // is collapsed
    check_at_use(str(repo))


def test_bare_repository_is_accepted(home):
    repo = git_init(home / "repositories" / "svc.git", bare=True)
    assert validate_url(str(repo)) == str(repo)


def test_configured_roots_from_settings_and_environment(settings, home, tmp_path, monkeypatch):
    a = git_init(tmp_path / "root-a" / "one")
    b = git_init(tmp_path / "root-b" / "two")
    for path in (a, b):
        with pytest.raises(ValueError, match="must live under"):
            validate_url(str(path))
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCAL_REPOSITORY_ROOTS": str(tmp_path / "root-a")}
    assert validate_url(str(a)) == str(a)
    with pytest.raises(ValueError):
        validate_url(str(b))
    settings.GOLDPATH = {**settings.GOLDPATH, "LOCAL_REPOSITORY_ROOTS": ""}
    monkeypatch.setenv("GOLDPATH_LOCAL_REPOSITORY_ROOTS", os.pathsep.join([str(tmp_path / "root-a"), "relative"]))
    assert validate_url(str(a)) == str(a)


def test_other_teams_checkouts_and_system_paths_are_refused(home, tmp_path):
    other = git_init(tmp_path / "other-team" / "secret-repo")
    for path in (str(other), "/etc", "/", str(home), f"{home}/repositories/../../other-team/secret-repo"):
        with pytest.raises(ValueError):
            validate_url(path)


def test_dotdot_is_refused_even_when_it_stays_inside(home):
    git_init(home / "repositories" / "svc")
    with pytest.raises(ValueError, match=r"\.\."):
        validate_url(f"{home}/repositories/x/../svc")


def test_symlink_escaping_the_root_is_refused(home, tmp_path):
    other = git_init(tmp_path / "other-team" / "secret-repo")
    (home / "repositories" / "innocent").symlink_to(other)
    with pytest.raises(ValueError, match="must live under"):
        validate_url(str(home / "repositories" / "innocent"))


def test_git_dir_symlink_or_gitfile_escaping_the_root_is_refused(home, tmp_path):
    other = git_init(tmp_path / "other-team" / "secret-repo")
    linked = home / "repositories" / "linked"
    linked.mkdir()
    (linked / ".git").symlink_to(other / ".git")
    with pytest.raises(ValueError, match="outside"):
        validate_url(str(linked))
    gitfile = home / "repositories" / "gitfile"
    gitfile.mkdir()
    (gitfile / ".git").write_text(f"gitdir: {other / '.git'}\n")
    with pytest.raises(ValueError):
        validate_url(str(gitfile))


def test_alternates_borrowing_another_repository_are_refused(home, tmp_path):
    other = git_init(tmp_path / "other-team" / "secret-repo")
    repo = git_init(home / "repositories" / "borrower")
    (repo / ".git" / "objects" / "info" / "alternates").write_text(f"{other / '.git' / 'objects'}\n")
    with pytest.raises(ValueError, match="alternates"):
        validate_url(str(repo))


def test_folder_that_is_not_a_git_repository_is_refused(home):
    (home / "repositories" / "plain").mkdir()
    with pytest.raises(ValueError, match="No git repository"):
        validate_url(str(home / "repositories" / "plain"))
    with pytest.raises(ValueError, match="No git repository"):
        validate_url(str(home / "repositories" / "missing"))


def test_control_characters_in_a_path_are_refused(home):
    repo = git_init(home / "repositories" / "svc")
    with pytest.raises(ValueError):
        validate_url(f"{repo}\nx")
    with pytest.raises(ValueError):
        validate_url(f"{repo}\x00")


def test_local_path_is_checked_again_at_use(home, tmp_path):
    """A symlink that was harmless at registration and later points at another team's repository."""
    inside = git_init(home / "repositories" / "real")
    link = home / "repositories" / "svc"
    link.symlink_to(inside)
    url = validate_url(str(link))
    check_at_use(url)
    other = git_init(tmp_path / "other-team" / "secret-repo")
    link.unlink()
    link.symlink_to(other)
    with pytest.raises(ValueError, match="must live under"):
        check_at_use(url)
