"""Benchmark workspace terminals (issue 15). Not a timed test; prints figures.

    python benchmarks/bench_terminal.py                  # embedded (in-memory) channel layer
    python benchmarks/bench_terminal.py --redis          # and the Redis channel layer (redis://127.0.0.1:6379/11)
    python benchmarks/bench_terminal.py --sandbox        # agents in their bubblewrap sandbox (catalog.workspace_host)

(a) keystroke-to-echo round trip through the portal: WebSocket client -> uvicorn (`portal.asgi`, as `make run`
    serves it) -> channel layer -> the workspace agent's link -> agent -> PTY -> bash's echo -> back, p50/p99 over
    --keystrokes keystrokes after --warmup, against the same shell on a PTY this script opens itself (pty.fork,
    write a byte, read its echo). Target: p50 under 10 ms added.
(b) --terminals terminals (default 50) open at once on this machine, spread over --workspaces workspaces (one
    agent each; the agent serves at most MAX_SESSIONS terminals per link), each typing --per-terminal keystrokes
    from a thread of its own, one every --interval-ms (closed loop: the next waits for the echo): round trip
    p50/p99 under that load, and whether every terminal echoed every keystroke.

Each channel layer runs in a child process with a temporary GOLDPATH_HOME (SQLite) and its own uvicorn. The
workspaces are rows made running through the ORM (no Terraform: the terminal path is what is measured), each
with a rotated agent token; the agent is catalog/workspace_agent/agent.py, unsandboxed unless --sandbox.
Every keystroke is 'x' followed by an untimed DEL (waits for its echo) so the line never grows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pty
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import free_port, organisation, pct, wait_http  # noqa: E402

AGENT = ROOT / "catalog" / "workspace_agent" / "agent.py"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
KEY, DEL = "x", "\x7f"
TARGET_ADDED_P50_MS = 10.0


# --- orchestrator ------------------------------------------------------------------------------------
def redis_url_from_env() -> str:
    for name in ("GOLDPATH_CHANNELS_REDIS_URL", "CELERY_BROKER_URL"):
        value = os.environ.get(name, "")
        if value.startswith("redis://127.0.0.1:6379/") or value.startswith("redis://localhost:6379/"):
            return value
    return ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", action="store_true", help="also run on the Redis channel layer")
    parser.add_argument("--only-redis", action="store_true", help="run on the Redis channel layer only")
    parser.add_argument("--sandbox", action="store_true", help="agents inside bubblewrap (catalog.workspace_host)")
    parser.add_argument("--keystrokes", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--terminals", type=int, default=50)
    parser.add_argument("--workspaces", type=int, default=2)
    parser.add_argument("--per-terminal", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=100.0, help="typing pace per terminal (0: flat out)")
    parser.add_argument("--child", choices=["embedded", "redis"], default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    redis_url = redis_url_from_env() or DEFAULT_REDIS
    layers = [] if args.only_redis else ["embedded"]
    if args.redis or args.only_redis or redis_url_from_env():
        layers.append("redis")
    results = {}
    for layer in layers:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "GOLDPATH_CHANNELS_REDIS_URL", "GOLDPATH_HOME")
        }
        home = tempfile.mkdtemp(prefix=f"gp-termbench-{layer}-")
        env["GOLDPATH_HOME"] = home
        if layer == "redis":
            env["GOLDPATH_CHANNELS_REDIS_URL"] = redis_url
        cmd = [sys.executable, __file__, "--child", layer] + [
            a for a in sys.argv[1:] if a not in ("--redis", "--only-redis")
        ]
        print(f"{layer}: running ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=1800)
        if proc.returncode != 0 or not proc.stdout.strip():
            print(f"{layer}: failed (exit {proc.returncode}); home kept at {home}\n{proc.stdout[-3000:]}")
            continue
        results[layer] = json.loads(proc.stdout.strip().splitlines()[-1])
        shutil.rmtree(home, ignore_errors=True)
    report(results, args, redis_url)


def report(results: dict, args: argparse.Namespace, redis_url: str) -> None:
    if not results:
        raise SystemExit("no results")
    first = next(iter(results.values()))
    print("\nTerminal benchmark: keystroke -> echo round trip (client -> uvicorn -> channel layer -> agent -> PTY)")
    print(f"machine: {os.cpu_count()} cores, load average at start {first['loadavg']}; agents "
          + ("in the bubblewrap sandbox (catalog.workspace_host)" if args.sandbox else "UNSANDBOXED (plain processes)")
          + f"; shell {first['shell']}")  # fmt: skip
    names = {"embedded": "in-memory layer", "redis": f"redis ({redis_url})"}
    print(f"{'':48}" + "".join(f"{names[k]:>34}" for k in results))
    n, w = args.terminals, args.workspaces
    rows = [
        (f"direct PTY p50 / p99 ({args.keystrokes} keys)", "direct"),
        ("portal p50 / p99", "portal"),
        ("added p50 / p99", "added"),
        ("ratio portal / direct (p50)", "ratio"),
        (f"{n} terminals on {w} workspaces: opened in", "open_s"),
        ("  echoed every keystroke", "echoed"),
        (f"  round trip p50 / p99 ({args.per_terminal} keys each)", "load"),
        ("  keystrokes per second, all terminals", "kps"),
        ("  uvicorn CPU during the load", "cpu"),
        ("  agents' + shells' CPU during the load", "agent_cpu"),
        (f"  the {n} clients' CPU (this benchmark)", "client_cpu"),
        (f"  whole machine busy (all users, {os.cpu_count()} cores)", "machine_busy"),
    ]
    for label, key in rows:
        print(f"{label:48}" + "".join(f"{fmt(key, r):>34}" for r in results.values()))
    pace = f"one keystroke every {args.interval_ms:.0f} ms per terminal" if args.interval_ms else "flat out"
    print(f"\nLoad: {pace}, closed loop. A keystroke is 'x' (timed) then DEL (untimed): the portal relays")
    print(f"twice the keystrokes per second shown. MAX_SESSIONS per agent link: {first['max_sessions']}.")
    print(f"Target: p50 under {TARGET_ADDED_P50_MS:.0f} ms added; all {n} terminals echo.")
    for layer, r in results.items():
        ok = r["added_p50"] < TARGET_ADDED_P50_MS
        all_echoed = r["echoed_terminals"] == n
        print(f"  {names[layer]}: added p50 {r['added_p50']:.2f} ms -> {'PASS' if ok else 'FAIL'}; "
              f"{r['echoed_terminals']}/{n} terminals echoed -> {'PASS' if all_echoed else 'FAIL'}")  # fmt: skip


def fmt(key: str, r: dict) -> str:
    if key in ("direct", "portal", "added", "load"):
        return f"{r[key + '_p50']:.2f} / {r[key + '_p99']:.2f} ms"
    if key == "ratio":
        return f"{r['portal_p50'] / r['direct_p50']:.1f}x"
    if key == "open_s":
        return f"{r['open_s']:.2f} s"
    if key == "echoed":
        return f"{r['echoed_terminals']}/{r['terminals']} ({r['echoes']}/{r['sent']} keys)"
    if key == "kps":
        return f"{r['kps']:.0f}"
    if key in ("cpu", "agent_cpu", "client_cpu"):
        return "n/a" if r[key] is None else f"{r[key]:.0f}% of one core"
    if key == "machine_busy":
        return "n/a" if r[key] is None else f"{r[key]:.0f}% of all cores"
    return str(r.get(key))


# --- child: one channel layer ------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from catalog.api_tokens import token_issue
    from catalog.conf import goldpath_home
    from catalog.workspace_agent.agent import MAX_SESSIONS

    home = goldpath_home()
    _, _, payments, _, alice = organisation()
    workspaces = make_workspaces(alice, payments, args.workspaces)
    token = token_issue(user=alice).key
    shell_home = home / "shell-home"  # an empty HOME: no rc files, the same shell for the agent and the baseline
    shell_home.mkdir()
    shell_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(shell_home), "SHELL": "/bin/bash", "LANG": "C.UTF-8",
        "TERM": "xterm-256color", "GOLDPATH_WORKDIR": str(shell_home),
    }  # fmt: skip
    port = free_port()
    web_log = open(home / "web.log", "a+")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=dict(os.environ), stdout=web_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    agents: list[subprocess.Popen] = []
    try:
        wait_http(port, "/healthz")
        for ws in workspaces:
            agents.append(start_agent(ws, port, shell_env, args.sandbox))
        wait_agents([ws.pk for ws in workspaces], home)
        loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
        direct = direct_pty(shell_env, args.warmup, args.keystrokes)
        url = f"ws://127.0.0.1:{port}/api/v1/workspaces/{{}}/terminal/"
        term = Term(url.format(workspaces[0].pk), token)
        term.wait_prompt()
        portal = [term.keystroke() for _ in range(args.warmup + args.keystrokes)][args.warmup :]
        term.close()
        if args.sandbox:  # the supervisors: their process trees hold the sandboxes, agents and shells
            pids = [
                int((home / "workspaces" / str(ws.pk) / ".goldpath" / "session.pid").read_text()) for ws in workspaces
            ]
        else:
            pids = [proc.pid for proc in agents if proc is not None]
        load = load_test(url, [ws.pk for ws in workspaces], token, args, web.pid, pids)
    except Exception:
        print(f"web log:\n{(home / 'web.log').read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in agents:
            stop_agent(proc)
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
        if args.sandbox:
            for ws in workspaces:
                subprocess.run([sys.executable, "-m", "catalog.workspace_host", str(home / "workspaces" / str(ws.pk)),
                                "stop"], cwd=ROOT, capture_output=True, timeout=60)  # fmt: skip
    d50, d99, p50, p99 = pct(direct, 50), pct(direct, 99), pct(portal, 50), pct(portal, 99)
    return {
        "direct_p50": d50, "direct_p99": d99, "portal_p50": p50, "portal_p99": p99,
        "added_p50": p50 - d50, "added_p99": p99 - d99, "loadavg": loadavg, "max_sessions": MAX_SESSIONS,
        "shell": shell_env["SHELL"], **load,
    }  # fmt: skip


def make_workspaces(owner, team, count: int) -> list:
    """Running workspaces as rows (template and version included): what the terminal path needs, no Terraform."""
    from catalog.models import TemplateVersion, Workspace, WorkspaceTemplate
    from catalog.models.tools import DataClassification

    template = WorkspaceTemplate.objects.create(slug="bench-term", name="Bench terminals")
    version = TemplateVersion.objects.create(template=template, number=1, files={}, content_hash="0" * 64,
                                             status="published")  # fmt: skip
    template.active_version = version
    template.save(update_fields=["active_version"])
    fields = {"owner": owner, "team": team, "template": template, "template_version": version}
    return [
        Workspace.objects.create(
            name=f"term-{i}", classification=DataClassification.INTERNAL, status="running", **fields
        )
        for i in range(count)
    ]


def start_agent(ws, port: int, shell_env: dict, sandbox: bool) -> subprocess.Popen | None:
    from catalog.conf import goldpath_home
    from catalog.terminals.services import agent_token_rotate

    agent_url = f"ws://127.0.0.1:{port}/api/v1/workspaces/{ws.pk}/agent/"
    token = agent_token_rotate(workspace_id=ws.pk)
    if sandbox:  # what the local-sandbox template's start does: a session spec, then the supervisor
        directory = goldpath_home() / "workspaces" / str(ws.pk)
        (directory / "src").mkdir(parents=True)
        (directory / ".goldpath").mkdir(mode=0o700)
        spec = directory / ".goldpath" / "session.json"
        spec.write_text(json.dumps({"agent_url": agent_url, "agent_token": token, "workspace_id": str(ws.pk)}))
        spec.chmod(0o600)
        out = subprocess.run([sys.executable, "-m", "catalog.workspace_host", str(directory), "start"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"workspace_host start failed: {out.stdout}{out.stderr}")
        return None
    env = {**shell_env, "GOLDPATH_AGENT_URL": agent_url, "GOLDPATH_AGENT_TOKEN": token}
    log = open(goldpath_home() / f"agent-{ws.pk}.log", "a+")  # noqa: SIM115
    argv = [shutil.which("python3") or sys.executable, str(AGENT)]  # stdlib only, like /usr/bin/python3 in a sandbox
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_agent(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_agents(ids: list, home: Path, timeout: float = 60) -> None:
    from catalog.models import Workspace

    deadline = time.monotonic() + timeout
    while Workspace.objects.filter(pk__in=ids, agent_state="ready").count() < len(ids):
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-1500:] for p in home.rglob("*.log"))
            raise RuntimeError(f"the agents did not connect in {timeout:.0f} s\n{logs}")
        time.sleep(0.1)


def read_until(recv, marker: bytes, quiet: float = 0.0, timeout: float = 15.0) -> bytes:
    """Output until `marker` shows; with `quiet`, until some output came and then none for `quiet` seconds."""
    seen, deadline = b"", time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{marker!r} not seen in {seen[-300:]!r}")
        settled = quiet and seen and marker in seen
        data = recv(min(left, quiet) if settled else left)
        if data is None:
            if settled:
                return seen
            continue
        seen += data
        if not quiet and marker in seen:
            return seen


# --- the baseline: the same shell on a PTY of our own -----------------------------------------------------------
def direct_pty(env: dict, warmup: int, count: int) -> list[float]:
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(env["GOLDPATH_WORKDIR"])
        os.execve(env["SHELL"], [env["SHELL"]], env)
    try:

        def recv(timeout: float) -> bytes | None:
            return os.read(fd, 65536) if select.select([fd], [], [], timeout)[0] else None

        read_until(recv, b"", quiet=0.3)  # the prompt: output, then quiet
        samples = []
        for _ in range(warmup + count):
            t0 = time.perf_counter()
            os.write(fd, KEY.encode())
            read_until(recv, KEY.encode())
            samples.append((time.perf_counter() - t0) * 1000)
            os.write(fd, DEL.encode())
            read_until(recv, b"\x08")
        return samples[warmup:]
    finally:
        os.kill(pid, signal.SIGHUP)
        os.close(fd)
        os.waitpid(pid, 0)


# --- a terminal client ---------------------------------------------------------------------------------------
class Term:
    """One terminal over the portal's WebSocket (websockets' sync client: its own I/O thread, real sockets)."""

    def __init__(self, url: str, token: str) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()  # the client as a context manager: websockets 17 warns otherwise
        headers = {"Authorization": f"Token {token}"}
        self.sock = self.stack.enter_context(connect(url, additional_headers=headers, open_timeout=30))

    def recv(self, timeout: float) -> bytes | None:
        try:
            frame = self.sock.recv(timeout=timeout)
        except TimeoutError:
            return None
        if not isinstance(frame, bytes):
            raise RuntimeError(f"text frame from the portal: {frame!r}")
        return frame

    def wait_prompt(self) -> None:
        read_until(self.recv, b"", quiet=0.3, timeout=30)  # output, then quiet

    def keystroke(self) -> float:
        """ms from sending one key to its echo; then a DEL, waited for but not timed."""
        t0 = time.perf_counter()
        self.sock.send(json.dumps({"data": KEY}))
        read_until(self.recv, KEY.encode())
        ms = (time.perf_counter() - t0) * 1000
        self.sock.send(json.dumps({"data": DEL}))
        read_until(self.recv, b"\x08")
        return ms

    def close(self) -> None:
        self.stack.close()


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their descendants (the agents and the shells they started)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    family, grew = set(pids), True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in family} - family
        family |= more
        grew = bool(more)
    return sum(cpu_seconds(pid) for pid in family)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process: the 50 clients
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot: what everyone on the machine used, not only us."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def load_test(url: str, ids: list, token: str, args: argparse.Namespace, web_pid: int, agent_pids: list[int]) -> dict:
    """All terminals open at once (one thread each), then all type together."""
    n = args.terminals
    terms: list[Term | None] = [None] * n
    errors: list[str] = []
    latencies: list[list[float]] = [[] for _ in range(n)]
    opened = threading.Barrier(n + 1)
    go = threading.Event()

    def one(i: int) -> None:
        try:
            terms[i] = Term(url.format(ids[i % len(ids)]), token)
            terms[i].wait_prompt()
        except Exception as exc:  # noqa: BLE001 - reported as a terminal that did not echo
            errors.append(f"terminal {i}: open: {exc}")
        opened.wait()
        go.wait()
        if terms[i] is None:
            return
        rnd = random.Random(i)
        time.sleep(rnd.random() * args.interval_ms / 1000)  # no lockstep
        try:
            for _ in range(args.per_terminal):
                t0 = time.perf_counter()
                latencies[i].append(terms[i].keystroke())
                left = args.interval_ms / 1000 - (time.perf_counter() - t0)
                if left > 0:
                    time.sleep(left * (0.5 + rnd.random()))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"terminal {i}: typing: {exc}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    opened.wait()
    open_s = time.monotonic() - t0
    cpu0, agent0, own0, busy0 = cpu_seconds(web_pid), tree_cpu(agent_pids), own_cpu(), machine_busy()
    t1 = time.monotonic()
    go.set()
    for t in threads:
        t.join(600)
    wall = time.monotonic() - t1
    cpu = (cpu_seconds(web_pid) - cpu0) / wall * 100
    client_cpu = (own_cpu() - own0) / wall * 100
    busy = [b - a for a, b in zip(busy0, machine_busy(), strict=True)]
    agent_cpu = (tree_cpu(agent_pids) - agent0) / wall * 100
    for term in terms:
        if term is not None:
            term.close()
    for line in errors[:5]:
        print(line, file=sys.stderr)
    flat = [x for lat in latencies for x in lat]
    return {
        "terminals": n, "open_s": open_s, "sent": n * args.per_terminal, "echoes": len(flat),
        "echoed_terminals": sum(1 for lat in latencies if len(lat) == args.per_terminal),
        "load_p50": pct(flat, 50), "load_p99": pct(flat, 99), "kps": len(flat) / wall, "cpu": cpu,
        "agent_cpu": agent_cpu, "client_cpu": client_cpu, "machine_busy": busy[0] / busy[1] * 100 if busy[1] else None,
        "errors": errors[:5],
    }  # fmt: skip


if __name__ == "__main__":
    main()
