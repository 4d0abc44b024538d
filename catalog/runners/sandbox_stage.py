"""Stage a sandbox run: check the engine, make its private scratch dir, start its egress proxy and agent socket.

Functions of the runner (catalog.runners.sandbox.SandboxRunner), used as its methods like
catalog.runners.sandbox_profile; Django-free, like the runner itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.runners import sandbox_profile
from catalog.runners.egress import EgressProxy
from catalog.runners.sandbox_files import (
    SandboxUnavailable,
    chown_tree,
    sandbox_image,
    sandbox_root,
    short_socket_dir,
)

if TYPE_CHECKING:
    from catalog.runners.sandbox import SandboxRunner

SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 107 bytes; longer scratch dirs use a short one
UNSANDBOXED_HINT = (
    "bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) "
    "or set GOLDPATH_ALLOW_UNSANDBOXED=1 to run agents without a sandbox"
)


def prepare(runner: SandboxRunner) -> None:
    """Check the engine, stage the private scratch dir, start the egress proxy and the agent socket."""
    if not runner.sandboxed and not runner.allow_unsandboxed:
        raise SandboxUnavailable(UNSANDBOXED_HINT)
    if not runner.workdir.is_dir():
        raise FileNotFoundError(f"workdir does not exist: {runner.workdir}")
    for folder in [*([runner.runtime] if runner.runtime is not None else []), *runner.runtimes.values()]:
        if not folder.is_dir():
            raise FileNotFoundError(f"tool runtime does not exist: {folder}")
    root = sandbox_root(runner.root)
    scratch = runner.scratch_root or root
    scratch.mkdir(parents=True, exist_ok=True)
    runner._tmp = scratch / f"sbx-{runner.run_id}"
    runner._tmp.mkdir(mode=0o700)
    runner._sockets = runner._tmp
    if len(str(runner._tmp / "egress" / "egress.sock")) > SOCKET_PATH_MAX:
        runner._sockets = short_socket_dir(runner.run_id)
        runner._sockets.mkdir(mode=0o700)
    runner._image = sandbox_image(root)
    for path in {runner._tmp, runner._sockets}:
        os.chmod(path, 0o755)  # the private parent keeps others out
    if runner.uid is not None:
        if os.stat(runner.workdir).st_uid != runner.uid:
            chown_tree(runner.workdir, runner.uid)
        check_reachable(runner)
        stage_runtime_binds(runner)
    if isinstance(runner.network, list) and runner.own_netns:
        # started on the sandbox's port
        runner._proxy = EgressProxy("", runner.network, runner.on_connection, gateway=runner.gateway)
    elif isinstance(runner.network, list):
        (runner._sockets / "egress").mkdir(mode=0o700)
        runner._proxy = EgressProxy(
            runner._sockets / "egress" / "egress.sock", runner.network, runner.on_connection, gateway=runner.gateway
        )
        runner._proxy.start()
        give_socket(runner, runner._sockets / "egress")
    if runner.agent_socket_factory is not None:
        (runner._sockets / "agent").mkdir(mode=0o700)
        runner._agent_socket = runner.agent_socket_factory(runner._sockets / "agent" / "agent.sock")
        runner._agent_socket.start()
        give_socket(runner, runner._sockets / "agent")


def stage_runtime_binds(runner: SandboxRunner) -> None:
    """A root worker: an empty scratch folder per runtime, which the process that becomes bwrap binds the
    runtime onto as root, in the sandbox's own mount namespace (see catalog.runners.sandbox)."""
    assert runner._tmp is not None
    runner.limits.binds, runner.bound = [], {}
    for host, inside, scratch_name in sandbox_profile.runtime_items(runner):
        folder = runner._tmp / scratch_name
        folder.mkdir(mode=0o755, parents=True)
        for made in [folder, *folder.parents]:
            if made == runner._tmp:
                break
            os.chmod(made, 0o755)
        runner.limits.binds.append((str(host), str(folder)))
        runner.bound[inside] = str(folder)


def give_socket(runner: SandboxRunner, folder: Path) -> None:
    """Let the sandbox uid (and only it) connect to the socket in `folder`."""
    if runner.uid is not None:
        os.chown(folder, runner.uid, runner.uid)
        for sock in folder.iterdir():
            os.chown(sock, runner.uid, runner.uid)


def check_reachable(runner: SandboxRunner) -> None:
    """bwrap runs as the sandbox uid: every folder on the way to what it binds must let that uid through."""
    assert runner._tmp is not None
    for target in (runner.workdir, runner._tmp, runner._sockets):
        for folder in [target, *target.parents]:
            info = os.stat(folder)
            if not (info.st_mode & stat.S_IXOTH or (info.st_uid == runner.uid and info.st_mode & stat.S_IXUSR)):
                raise SandboxUnavailable(
                    f"the sandbox user cannot reach {target} (through {folder}): keep run folders under the "
                    "sandbox root (GOLDPATH_SANDBOX_ROOT)"
                )
