"""Attacks on SSO, the plug-in API contract and the CLI: the real OIDC provider process and the CLI fixtures are
the ones tests/sso and tests/cli use."""

from tests.cli.conftest import _installed, goldpath, other_user, portal  # noqa: F401 - the fixtures
from tests.sso.conftest import idp, idp_users_file, oidc_provider  # noqa: F401 - the fixtures
