"""SSO test setup: a real OpenID Connect provider process (tests/sso/provider, started once per session) in front
of the portal served by pytest-django's live server, and helpers to change a user's groups at the provider."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sso.flow import SignIn, sign_in
from tests.sso.oidc_provider import SOURCE, ProviderProcess, start_provider

IDP_NAME = "Test IdP"
PASSWORDS = {login: user["password"] for login, user in json.loads((SOURCE / "users.json").read_text()).items()}


@pytest.fixture(scope="session")
def idp_users_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("idp") / "users.json"


@pytest.fixture(scope="session")
def oidc_provider(live_server, idp_users_file) -> ProviderProcess:
    idp_users_file.write_text((SOURCE / "users.json").read_text())
    provider = start_provider(users_file=idp_users_file, redirect_uris=[f"{live_server.url}/sso/callback/"])
    try:
        yield provider
    finally:
        provider.stop()


@dataclass
class Idp:
    provider: ProviderProcess
    users_file: Path
    portal: str

    def users(self) -> dict:
        return json.loads(self.users_file.read_text())

    def set_groups(self, login: str, groups: list[str]) -> None:
        """What the provider says about `login` from its next sign-in on."""
        users = self.users()
        users[login]["groups"] = groups
        self.users_file.write_text(json.dumps(users))

    def sign_in(self, login: str, **kwargs) -> SignIn:
        return sign_in(self.portal, login, PASSWORDS[login], **kwargs)


def sso_settings(provider: ProviderProcess) -> dict:
    return {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_NAME": IDP_NAME,
        "OIDC_GROUPS_CLAIM": "groups",
        "LOCAL_PASSWORDS": True,
    }


@pytest.fixture
def idp(oidc_provider, idp_users_file, live_server, settings) -> Idp:
    """SSO configured against the provider, whose users are reset to provider/users.json."""
    idp_users_file.write_text((SOURCE / "users.json").read_text())
    settings.GOLDPATH = {**settings.GOLDPATH, **sso_settings(oidc_provider)}
    return Idp(provider=oidc_provider, users_file=idp_users_file, portal=live_server.url)
