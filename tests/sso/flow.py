"""Driving a real sign-in with an HTTP client: the portal's login page, its "Sign in with" link, the provider's
login and consent forms, and the redirect back to the portal's callback, following every redirect by hand."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

MAX_HOPS = 20


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(), "fields": {}}
            )
        elif tag in ("input", "button") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def forms(page: str) -> list[dict]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


@dataclass
class SignIn:
    session: requests.Session
    response: requests.Response  # the last answer (the portal's page after the callback, or where it stopped)
    callback_url: str = ""  # set when stopped before the portal's callback


def follow(s: requests.Session, r: requests.Response, stop_prefix: str | None = None) -> tuple[requests.Response, str]:
    for _ in range(MAX_HOPS):
        if not r.is_redirect:
            return r, ""
        location = urljoin(r.url, r.headers["location"])
        if stop_prefix and location.startswith(stop_prefix):
            return r, location
        r = s.get(location, allow_redirects=False, timeout=30)
    raise AssertionError("too many redirects")


def sso_link(page: str) -> str:
    match = re.search(r'<a[^>]*\bid="sso-login"[^>]*\bhref="([^"]+)"', page)
    assert match, "no 'Sign in with' button on the login page"
    return html.unescape(match.group(1))


def sign_in(
    portal: str, login: str, password: str, *, session: requests.Session | None = None, stop_at_callback: bool = False
) -> SignIn:
    """Sign in through the provider as a person would; with stop_at_callback, stop before the portal's callback
    and return its URL (for tampering tests)."""
    s = session or requests.Session()
    login_page = s.get(f"{portal}/login/", timeout=30)
    assert login_page.status_code == 200
    stop = f"{portal}/sso/callback/" if stop_at_callback else None
    r, _ = follow(s, s.get(urljoin(login_page.url, sso_link(login_page.text)), allow_redirects=False, timeout=30))
    assert r.status_code == 200 and "sign in" in r.text.lower(), r.text[:500]
    (form,) = forms(r.text)
    r = s.post(urljoin(r.url, form["action"]), data={"login": login, "password": password}, allow_redirects=False)
    r, callback = follow(s, r, stop)
    if not callback and "allow access" in r.text.lower():  # the provider's consent form
        (form,) = forms(r.text)
        r = s.post(urljoin(r.url, form["action"]), data=form["fields"], allow_redirects=False)
        r, callback = follow(s, r, stop)
    return SignIn(session=s, response=r, callback_url=callback)
