"""Single sign-on with any OpenID Connect provider (authorization code flow with PKCE), on mozilla-django-oidc.

- `config`: Goldpath's settings as mozilla-django-oidc reads them; SSO is off while OIDC_ISSUER is empty.
- `discovery`: the issuer's discovery document and signing keys, fetched and cached.
- `backend`: the authentication backend (ID token checks, the sign-in service, refusing local passwords).
- `sync`: users made on first sign-in, and teams and roles re-synced by the mapping rules at every sign-in.
- `rules`: the mapping rules' services (platform admins edit them at `sso/mappings/`).
- `views`, `urls`: the sign-in redirect, the callback and the mapping pages, under `goldpath:sso-*`.
"""
