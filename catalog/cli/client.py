"""The HTTP side: one httpx client per command, token auth, error bodies turned into messages."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from . import config
from .errors import ApiError, CliError, api_message

API_PREFIX = "/api/v1/"
TIMEOUT_S = 30.0


def cli_version() -> str:
    try:
        return version("goldpath")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


class Client:
    """`<url>/api/v1/` with `Authorization: Token ...`; every error status raises ApiError."""

    def __init__(self, url: str, token: str | None = None, *, token_from_env: bool = False) -> None:
        self.url = url.rstrip("/")
        self.token_from_env = token_from_env
        headers = {"Accept": "application/json", "User-Agent": f"goldpath-cli/{cli_version()}"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers, timeout=TIMEOUT_S)

    @classmethod
    def from_config(cls, *, need_token: bool = True) -> Client:
        session = config.current(need_token=need_token)
        return cls(session.url, session.token, token_from_env=session.token_from_env)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        _refuse_dot_segments(path)
        try:
            response = self.http.request(method, path.lstrip("/"), **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(f"The portal at {self.url} did not answer in time ({type(exc).__name__}).") from exc
        except httpx.HTTPError as exc:
            raise CliError(f"Cannot reach the portal at {self.url}: {exc}") from exc
        if response.is_redirect:
            raise CliError(
                f"{self.url}{API_PREFIX}{path} redirects to {response.headers.get('location')}: "
                "is the URL the portal's address?"
            )
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response

    def _error(self, method: str, path: str, response: httpx.Response) -> ApiError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if body is None:
            text = " ".join(response.text.split())[:200]
            message = f"The portal answered HTTP {status} to {method} {API_PREFIX}{path}" + (
                f": {text}" if text else "."
            )
            if status == 404:
                message += f"\nIs {self.url} a Goldpath portal?"
            return ApiError(status, message, None)
        message = api_message(status, body)
        if status == 401:
            source = "GOLDPATH_TOKEN" if self.token_from_env else "your stored token"
            message += f"\nThe portal refused {source}: sign in again with `goldpath login --url {self.url}`."
        elif status == 404 and message.strip() in ("Not found.", "No such object."):
            message = f"Not found: {API_PREFIX}{path.lstrip('/')} (it does not exist or you may not see it)."
        return ApiError(status, message, body)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(f"The portal sent something other than JSON for {method} {API_PREFIX}{path}.") from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.json("GET", path, params=_clean(params))

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.json("POST", path, **kwargs)

    def delete(self, path: str) -> Any:
        return self.json("DELETE", path)

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (page-number or cursor pages), 200 a request.

        The `next` link's query is re-sent to this client's own base URL, so the token never follows a
        link to another host."""
        query: dict[str, Any] = {"page_size": 200, **(_clean(params) or {})}
        while True:
            data = self.get(path, query)
            if isinstance(data, list):  # an unpaginated list
                yield from data
                return
            yield from data.get("results", [])
            next_url = data.get("next")
            if not next_url:
                return
            query = dict(parse_qsl(urlsplit(next_url).query, keep_blank_values=True))


def _refuse_dot_segments(path: str) -> None:
    """A name or id typed by the user becomes a path segment: `..` would make httpx resolve the request to
    another endpoint of the portal (with the user's token), so it is refused rather than sent."""
    bare = path.split("?", 1)[0].split("#", 1)[0]
    if any(segment in (".", "..") for segment in bare.split("/")) or "\\" in bare:
        raise CliError(f"Not a valid name or id (it would change the address asked for): {path!r}")


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items() if v is not None}
