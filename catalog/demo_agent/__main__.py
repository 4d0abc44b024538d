"""Demo agent entry point: `python -m catalog.demo_agent --prompt TEXT --index N`.

Deterministic from (prompt, index) so parallel runs differ; words in the prompt trigger
test behaviours: [fail], [hang], [network].

Like a real agent integration, it reports progress and attaches its result through the run's
own socket (GOLDPATH_AGENT_SOCKET) with its identity token; standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def _say(text: str) -> None:
    print(f"[demo-agent] {text}", flush=True)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _report(endpoint: str, payload: dict) -> None:
    """POST to the run's own agent endpoint through its socket; a failed report never fails the run."""
    path, token = os.environ.get("GOLDPATH_AGENT_SOCKET"), os.environ.get("GOLDPATH_AGENT_TOKEN")
    api = os.environ.get("GOLDPATH_AGENT_API")
    if not (path and token and api):
        return
    try:
        conn = _UnixHTTPConnection(path)
        conn.request(
            "POST",
            f"{api}{endpoint}/",
            body=json.dumps(payload),
            headers={"Authorization": f"Agent {token}", "Content-Type": "application/json"},
        )
        status = conn.getresponse().status
        conn.close()
    except OSError as exc:
        _say(f"could not report {endpoint}: {exc}")
        return
    _say(f"reported {endpoint}: HTTP {status}")


def _try_network() -> int:
    denied = 0
    try:
        with socket.create_connection(("example.com", 443), timeout=3):
            _say("direct connection to example.com:443 succeeded")
    except OSError as exc:
        denied += 1
        _say(f"direct connection to example.com:443 denied: {exc}")
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        try:
            with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=5) as s:
                s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
                status = s.recv(4096).split(b"\r\n", 1)[0].decode("latin-1", "replace")
            _say(f"proxy CONNECT example.com:443 answered: {status}")
            if " 200 " not in f"{status} ":
                denied += 1
        except OSError as exc:
            denied += 1
            _say(f"proxy {proxy} unreachable: {exc}")
    return 3 if denied else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catalog.demo_agent")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt")
    group.add_argument("--prompt-file")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    prompt = args.prompt if args.prompt is not None else Path(args.prompt_file).read_text(encoding="utf-8")
    _say(f"run {args.index} starting in {os.getcwd()}")
    _report("progress", {"progress": f"run {args.index}: editing files"})
    if "[fail]" in prompt:
        _say("failing as asked by the prompt")
        print("demo agent: asked to fail", file=sys.stderr, flush=True)
        return 1
    if "[hang]" in prompt:
        _say("hanging as asked by the prompt (with a sleeping child)")
        subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)", "goldpath-demo-hang-child"])
        while True:
            time.sleep(1)
    if "[network]" in prompt:
        return _try_network()
    digest = hashlib.sha256(f"{prompt}\0{args.index}".encode()).hexdigest()
    demo = Path("GOLDPATH_DEMO.md")
    existing = demo.read_text(encoding="utf-8") if demo.exists() else "# Goldpath demo agent\n\n"
    demo.write_text(existing + f"- run {args.index}: {digest[:16]}\n", encoding="utf-8")
    changed = [demo.name]
    _say(f"wrote GOLDPATH_DEMO.md ({digest[:16]})")
    readme = Path("README.md")
    if readme.exists():
        with readme.open("a", encoding="utf-8") as fh:
            fh.write(f"\n<!-- demo agent run {args.index}: {digest[16:24]} -->\n")
        changed.append(readme.name)
        _say("appended a note to README.md")
    _report("result", {"result": {"digest": digest[:16], "files": sorted(changed)}})
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
