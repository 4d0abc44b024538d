// A real OpenID Connect provider for Goldpath's SSO tests and demos: panva's oidc-provider (pinned in
// package.json) with one confidential client, PKCE required, RS256-signed ID tokens, and users (with a
// `groups` claim) read from a JSON file at every sign-in, so a test can change someone's groups between two
// sign-ins. The login and consent pages are a tiny form flow of our own (no devInteractions): the login form
// checks the password from the users file.
//
// Environment (all optional):
//   HOST (127.0.0.1), PORT (9000; 0 picks a free one), USERS_FILE (./users.json beside this file),
//   CLIENT_ID (goldpath), CLIENT_SECRET (goldpath-test-secret),
//   REDIRECT_URIS (comma-separated; default the standalone portal's callback on localhost:8000 and 127.0.0.1:8000)
// Prints `PORT <n>` and `ISSUER <url>` on stdout once it listens. Listens on loopback only.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT ?? 9000);
const USERS_FILE = process.env.USERS_FILE || path.join(here, 'users.json');
const CLIENT_ID = process.env.CLIENT_ID || 'goldpath';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'goldpath-test-secret';
const REDIRECT_URIS = (process.env.REDIRECT_URIS
  || 'http://localhost:8000/sso/callback/,http://127.0.0.1:8000/sso/callback/').split(',').filter(Boolean);

function users() {
  return JSON.parse(readFileSync(USERS_FILE, 'utf8'));
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(res, title, body, status = 200) {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`);
}

function loginForm(res, uid, error = '', login = '') {
  const alert = error ? `<p role="alert">${escapeHtml(error)}</p>` : '';
  page(res, 'Test identity provider: sign in', `${alert}
    <form method="post" action="/interaction/${escapeHtml(uid)}/login">
      <label>Username <input name="login" value="${escapeHtml(login)}" autofocus></label>
      <label>Password <input name="password" type="password"></label>
      <button type="submit">Sign in</button>
    </form>`, error ? 401 : 200);
}

function consentForm(res, uid, details) {
  const scopes = (details.missingOIDCScope || []).join(' ');
  page(res, 'Test identity provider: allow access', `
    <p>Goldpath asks for: ${escapeHtml(scopes)}</p>
    <form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
      <button type="submit">Continue</button>
    </form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups'],
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const entry = Object.entries(users()).find(([login, user]) => (user.sub || login) === id);
    if (!entry) return undefined;
    const [login, user] = entry;
    return {
      accountId: id,
      async claims() {
        const fresh = users()[login] || user; // groups as the file says now
        return {
          sub: id,
          preferred_username: fresh.preferred_username || login,
          name: fresh.name,
          given_name: fresh.given_name,
          family_name: fresh.family_name,
          email: fresh.email,
          email_verified: fresh.email_verified ?? true,
          groups: fresh.groups || [],
        };
      },
    };
  },
};

async function interaction(provider, req, res) {
  const [, , uid, action] = new URL(req.url, 'http://x').pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 'Interaction not found', '', 404);
  const { prompt } = details;
  if (req.method === 'GET' && !action) {
    return prompt.name === 'login' ? loginForm(res, uid) : consentForm(res, uid, prompt.details);
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const user = users()[login];
    if (!user || user.password !== form.get('password')) {
      return loginForm(res, uid, 'Unknown user or wrong password.', login);
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.sub || login } }, {
      mergeWithLastSubmission: false,
    });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }
  return page(res, 'Not allowed here', '', 400);
}

const server = http.createServer();
server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, req, res).catch((err) => {
        page(res, 'Sign-in error', `<p>${escapeHtml(err.message)}</p>`, 400);
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(`PORT ${port}\nISSUER ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive clients must not hold the exit
  });
}
