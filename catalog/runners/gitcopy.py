"""The one hardened git: every git Goldpath starts, on the host or in a sandbox.

On the host: clone, commit, push, blame; in a sandbox: diff.

Every byte of a repository is hostile, so git here never honours anything a repository says about running
programs: no system or global config, hooks pointed at /dev/null (the command line's config wins over the
repository's own), no fsmonitor, no auto-gc, no redirects, only the transports we chose, no
terminal prompts (HARDENING and GIT_ENV, used on both sides). Git drops command-line config for the process it
starts in *another* repository (upload-pack, receive-pack), so a local target is never pushed into: the branch is
fetched into it by a process of ours (see _publish). Git never runs on the host in a tree an agent could write:
the run's diff is computed inside the sandbox (diff_command, run by catalog.agents.execution), and commits are
made in a fresh clone of ours.

Git and server text never goes back to a user: a GitError carries a code and a fixed message; the raw text
stays in the worker's log (`detail`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog.masking import mask_values

from ..repository_urls import check_at_use, host_and_port

log = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MESSAGES = {
    "refused": "The repository's address is not allowed here.",
    "unreachable": "The repository could not be read (it is missing, unreachable or its credential was refused).",
    "ref_not_found": "The base ref does not exist in the repository.",
    "apply_failed": "The run's change does not apply on its base commit.",
    "push_failed": "The branch could not be pushed to the repository.",
    "failed": "A git operation failed.",
}
# Config given on every command line: it outranks the repository's own config, and reaches the git processes
# started in the same repository (not those started in another one: see _publish).
HARDENING = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.alternateRefsCommand=",
    "receive.autogc=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "http.followRedirects=false",
    "submodule.recurse=false",
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "uploadpack.allowAnySHA1InWant=false",
)

# Environment every git of ours starts with (host and sandbox): no system or global config, never a prompt.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false",
    "GIT_PROTOCOL_FROM_USER": "0",
}


def config_args() -> list[str]:
    """HARDENING as `-c key=value` arguments (put before the git subcommand)."""
    return [arg for item in HARDENING for arg in ("-c", item)]


class GitError(RuntimeError):
    """A git operation failed: `code` and a fixed `message` for users, `detail` for the worker's log only."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code if code in MESSAGES else "failed"
        self.message = MESSAGES[self.code]
        self.detail = detail
        super().__init__(f"{self.message} (git: {self.code})")


def is_local(url: str) -> bool:
    return url.startswith("/")


class Git:
    """Hardened git for one repository address (a registered URL or local path) and its credential."""

    def __init__(self, url: str, credential: str = "") -> None:
        self.url = url
        self.credential = credential or ""
        self._scratch: Path | None = None
        self._pinned: list[str] = []  # the addresses check_address() allowed: git connects to these only

    def __enter__(self) -> Git:
        self._scratch = Path(tempfile.mkdtemp(prefix="goldpath-git-"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # -- environment -------------------------------------------------------------------------
    def _env(self, author: tuple[str, str] | None = None) -> dict[str, str]:
        assert self._scratch is not None, "use Git(...) as a context manager"
        home = self._scratch / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C",
            **GIT_ENV,
            "GIT_ALLOW_PROTOCOL": "file" if is_local(self.url) else "https:ssh",
        }
        extra: list[tuple[str, str]] = []
        if is_local(self.url):
            extra.append(("protocol.file.allow", "always"))
            extra.append(("safe.directory", self.url))
            extra.append(("safe.directory", self.url.rstrip("/") + "/.git"))
        if self._pinned and self.url.startswith("https://"):
            extra.append(("http.curloptResolve", self._resolve_entry()))
        if self.url.startswith("https://") and self.credential:
            user, _, secret = self.credential.partition(":") if ":" in self.credential else ("x-access-token", "", "")
            secret = secret or self.credential
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            extra.append(("http.extraHeader", f"Authorization: Basic {token}"))
        if self.url.startswith("ssh://"):
            env["GIT_SSH_COMMAND"] = self._ssh_command()
        # secrets go through the environment (readable by this user only), never the argv
        for i, (key, value) in enumerate(extra):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env["GIT_CONFIG_COUNT"] = str(len(extra))
        if author:
            for role in ("AUTHOR", "COMMITTER"):
                env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = author
        return env

    def _resolve_entry(self) -> str:
        """curl's `HOST:PORT:ADDRESS[,ADDRESS]`: no second DNS answer (rebinding to 127.0.0.1) reaches curl."""
        host, port = host_and_port(self.url)
        addresses = ",".join(f"[{a}]" if ":" in a else a for a in self._pinned)
        return f"{host}:{port}:{addresses}"

    def _ssh_command(self) -> str:
        assert self._scratch is not None
        known = self._scratch / "known_hosts"
        parts = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
        parts += ["-o", f"UserKnownHostsFile={known}", "-o", "ProxyCommand=none", "-o", "PermitLocalCommand=no"]
        if self._pinned:  # connect to the checked address; known_hosts still keyed by the name
            host, _port = host_and_port(self.url)
            parts += ["-o", f"HostName={self._pinned[0]}", "-o", f"HostKeyAlias={host}"]
        if self.credential:
            key = self._scratch / "id"
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.credential.strip() + "\n")
            parts += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        return " ".join(parts)  # our own paths only: no user text reaches this shell string

    def run(
        self,
        args: list[str],
        *,
        cwd: Path | None = None,
        code: str = "failed",
        author: tuple[str, str] | None = None,
        input_text: str | None = None,
        timeout: float = 300,
    ) -> str:
        try:
            proc = subprocess.run(
                ["git", *config_args(), *args],
                cwd=cwd,
                env=self._env(author),
                input=input_text,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=None if input_text is not None else subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(code, f"git {args[0]}: {exc}") from None
        if proc.returncode != 0:
            detail = self._mask(proc.stderr.strip() or proc.stdout.strip())
            log.warning("git %s failed (%s): %s", args[0], code, detail[:2000])
            raise GitError(code, detail)
        return proc.stdout

    def _mask(self, text: str) -> str:
        return mask_values(text, [self.credential])

    # -- operations --------------------------------------------------------------------------
    def check_address(self) -> None:
        """Refuse an address that is no longer allowed (settings changed, DNS now points inside)."""
        try:
            self._pinned = check_at_use(self.url)
        except ValueError as exc:
            raise GitError("refused", str(exc)) from None

    def clone(self, dest: Path, *, bare: bool = False, checkout: bool = True) -> None:
        """A fresh clone of ours (`--no-local`: the pack protocol, never the source's files or links)."""
        self.check_address()
        args = ["clone", "--quiet", "--no-local", "--no-hardlinks"]
        args += ["--bare"] if bare else ([] if checkout else ["--no-checkout"])
        self.run([*args, "--", self.url, str(dest)], code="unreachable")

    def resolve(self, repo: Path, ref: str) -> str:
        """The commit `ref` names in `repo` (a branch of the remote, a tag or a sha)."""
        for candidate in (ref, f"origin/{ref}", f"refs/remotes/origin/{ref}"):
            try:
                out = self.run(
                    ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"],
                    cwd=repo,
                    code="ref_not_found",
                )
            except GitError:
                continue
            return out.strip()
        raise GitError("ref_not_found", f"{ref} not found")

    def prepare_copy(self, ref: str, dest: Path) -> str:
        """Clone into `dest` and check out `ref` detached; returns its commit sha."""
        self.clone(dest, checkout=False)
        sha = self.resolve(dest, ref)
        self.run(["checkout", "--quiet", "--detach", sha], cwd=dest, code="failed")
        return sha

    def commit_diff(
        self,
        base_sha: str,
        diff: str,
        branch: str,
        message: str,
        trailers: dict[str, str],
        author: tuple[str, str],
    ) -> tuple[str, str]:
        """Apply `diff` on a new `branch` from `base_sha` in a fresh clone and push that branch alone.

        The target's own checkout, current branch, hooks and config are never used: the push's receive-pack
        gets our hooksPath (/dev/null) on its command line.
        """
        assert self._scratch is not None
        body = message.rstrip("\n")
        if trailers:
            body += "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers.items())
        work = self._scratch / "commit"
        self.clone(work, checkout=False)
        if not SHA_RE.match(base_sha):
            base_sha = self.resolve(work, base_sha)
        self.run(["checkout", "--quiet", "-b", branch, base_sha], cwd=work, code="failed")
        if diff.strip():
            self.run(["apply", "--index", "--binary", "-"], cwd=work, input_text=diff, code="apply_failed")
        self.run(
            ["commit", "--quiet", "--no-verify", "--allow-empty", "-F", "-"],
            cwd=work,
            author=author,
            input_text=body + "\n",
        )
        commit = self.run(["rev-parse", "HEAD"], cwd=work).strip()
        tree = self.run(["rev-parse", "HEAD^{tree}"], cwd=work).strip()
        self._publish(work, commit, branch)
        return commit, tree

    def _publish(self, work: Path, commit: str, branch: str) -> None:
        """Put `commit` on `branch` of the repository, and nothing else.

        A remote gets a push (its hooks are the server's business). A local repository is never pushed into:
        git clears our command-line config for the receive-pack it would start there, so that repository's
        own hooks would run in this worker. Instead git fetches the commit into it from our clone, as a
        process of ours whose command line turns hooks, maintenance and fsmonitor off.
        """
        self.check_address()
        ref = f"refs/heads/{branch}"
        if not is_local(self.url):
            self.run(["push", "--quiet", "--no-verify", "origin", f"{commit}:{ref}"], cwd=work, code="push_failed")
            return
        target = Path(self.url)
        git_dir = target / ".git" if (target / ".git").is_dir() else target
        self.run(
            [
                "--git-dir",
                str(git_dir),
                "fetch",
                "--quiet",
                "--no-auto-maintenance",
                "--no-auto-gc",
                "--no-write-fetch-head",
                "--no-tags",
                "--no-recurse-submodules",
                str(work),
                f"{commit}:{ref}",
            ],
            code="push_failed",
        )

    @contextmanager
    def bare_view(self) -> Iterator[Path]:
        """A bare clone of ours to read history from (local and remote alike)."""
        assert self._scratch is not None
        path = self._scratch / "view.git"
        if not path.exists():
            self.clone(path, bare=True)
        yield path


def diff_command(base_sha: str) -> list[str]:
    """The argv that computes a run's diff inside its sandbox (untracked files included, binary safe).

    It runs in the agent's own sandbox profile (with GIT_ENV), so whatever the agent wrote into .git (hooks,
    fsmonitor, filters, external diff) runs, if at all, with no privilege, no network and no secret; the same
    HARDENING as on the host keeps our config above the repository's. (`diff.external=` is safe only beside
    `--no-ext-diff`: an empty command would be run otherwise, so it is not in HARDENING.)
    """
    script = 'git "$@" add -A -- . && exec git "$@" diff --cached --binary --no-ext-diff --no-textconv "$0"'
    return ["sh", "-c", script, base_sha, *config_args(), "-c", "diff.external="]
