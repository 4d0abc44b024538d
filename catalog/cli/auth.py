"""`goldpath login`, `logout` and `whoami`: an API token from username and password, kept 0600."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from . import config
from .client import Client
from .errors import ApiError, CliError
from .output import JsonOption, note, print_json, say


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on standard input.")
        return password
    return typer.prompt("Password", hide_input=True)


def _token_info(client: Client) -> dict[str, Any] | None:
    """The caller's own token (id, last characters, expiry); None when the portal does not list tokens."""
    try:
        data = client.get("auth/tokens/")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    items = data.get("results", []) if isinstance(data, dict) else data
    return items[0] if items else None


def _warn_plain_http(base: str) -> None:
    """Password and token would cross the network unencrypted: say so (loopback is this machine)."""
    parts = urlsplit(base)
    if parts.scheme == "http" and (parts.hostname or "") not in ("localhost", "127.0.0.1", "::1"):
        note(f"Warning: {base} is plain http: your password and token travel unencrypted. Use https://.")


def login(
    url: Annotated[
        str | None, typer.Option("--url", help="The portal's address (default: GOLDPATH_URL or the last one).")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Your username (prompted when left out).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (for scripts).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Sign in with your username and password and store an API token for the next commands."""
    raw = url or os.environ.get(config.URL_ENV) or config.load().get("url")
    if not raw:
        raise CliError("Give the portal's address: goldpath login --url https://goldpath.example.com")
    base = config.normalize_url(raw)
    _warn_plain_http(base)
    if not username:
        if password_stdin:
            raise CliError("--password-stdin needs --username.")
        username = typer.prompt("Username")
    password = _password(password_stdin)
    with Client(base) as anonymous:
        token = anonymous.post("auth/token/", {"username": username, "password": password})["token"]
    with Client(base, token) as client:
        info = _token_info(client)
    path = config.save({"url": base, "token": token, "username": username})
    expires = (info or {}).get("expires")
    if json_output:
        print_json({"url": base, "username": username, "expires": expires, "config": str(path)})
        return
    say(f"Signed in to {base} as {username}" + (f" (token expires {expires})." if expires else "."))
    note(f"Token stored in {path} (readable only by you).")
    if os.environ.get(config.TOKEN_ENV):
        note(f"Note: {config.TOKEN_ENV} is set and overrides the stored token.")


def logout(
    revoke: Annotated[
        bool,
        typer.Option(
            "--revoke",
            help="Also revoke the token on the portal (it is your only API token: other sign-ins with it end too).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Forget the stored token (the portal address is kept for the next `goldpath login`)."""
    stored = config.load()
    revoked = False
    if revoke and stored.get("token") and stored.get("url"):
        with Client(config.normalize_url(stored["url"]), stored["token"]) as client:
            try:
                client.delete("auth/token/")
                revoked = True
            except ApiError as exc:
                if exc.status != 401:  # an already expired or revoked token is as good as revoked
                    raise
    had_token = bool(stored.pop("token", None))
    stored.pop("username", None)
    if had_token:
        config.save(stored)
    if json_output:
        print_json({"signed_out": had_token, "revoked": revoked})
        return
    say("Signed out." + (" The token was revoked on the portal." if revoked else "") if had_token else "Not signed in.")
    if os.environ.get(config.TOKEN_ENV):
        note(f"{config.TOKEN_ENV} is still set in your environment and is used until you unset it.")




def whoami(json_output: JsonOption = False) -> None:
    """Show who the token signs you in as: portal, user, role, teams and the token's expiry."""
    session = config.current()
    with Client(session.url, session.token, token_from_env=session.token_from_env) as client:
        token = _token_info(client)  # answers 401 for an expired or revoked token
        user = client.get("users/me/")
        username = user.get("username") or session.username
    result = {
        "url": session.url,
        "username": username,
        "role": user.get("role"),
        "teams": user.get("teams", []),
        "managed_teams": user.get("managed_teams", []),
        "token_source": "GOLDPATH_TOKEN" if session.token_from_env else str(config.config_path()),
        "token_expires": (token or {}).get("expires"),
    }
    if json_output:
        print_json(result)
        return
    say(f"{username or 'unknown user'} on {session.url}")
    say(f"  role:   {result['role'] or '-'}")
    say(f"  teams:  {', '.join(result['teams']) or '-'}")
    if result["managed_teams"]:
        say(f"  manages: {', '.join(result['managed_teams'])}")
    say(f"  token:  {result['token_source']}" + (f", expires {result['token_expires']}" if token else ""))
