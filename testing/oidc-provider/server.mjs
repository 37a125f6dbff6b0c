// Test authorization server for Tenure's integration tests.
//
// Runs one oidc-provider instance on 127.0.0.1 with dynamic client registration,
// RFC 7592 client management, headless login, optional expiring client secrets,
// request counters and a few admin switches under /__admin/.
//
// stdout carries exactly one line: `ready http://127.0.0.1:PORT`. Everything else
// (including oidc-provider notices) goes to stderr.

import { randomBytes, generateKeyPairSync } from 'node:crypto';
import process from 'node:process';

import {
  HOST, countsSnapshot, freshCounts, keepStdoutForReadyLine, listenOnLoopback, nowSeconds, parseArgs,
  serveUntilStopped,
} from '../harness-common.mjs';

// oidc-provider prints its notices with console.info (stdout). Keep stdout for the
// ready line only, so send those notices to stderr before the library is loaded.
keepStdoutForReadyLine();

const { default: Provider, errors } = await import('oidc-provider');

// ---------------------------------------------------------------------------
// Command line

const USAGE = `usage: node server.mjs [options]
  --port N                    port on 127.0.0.1 (0 = pick a free port; default 0)
  --secret-ttl SECONDS        client secrets expire SECONDS after registration or
                              update, and rotate on every update (0 = never; default 0)
  --initial-access-token TOK  registration requires "Authorization: Bearer TOK"
  --cimd                      enable client ID metadata documents (draft-02)
  --device-flow               enable the device authorization grant (RFC 8628); tests
                              approve a user code with POST /__admin/approve-device
  --dpop                      require a server nonce in every DPoP proof (RFC 9449 §8,
                              §9), at the token endpoint and at userinfo; without it,
                              DPoP is on (the library's default) and asks for no nonce
  --fail-updates              start with RFC 7592 PUT failing with 500
  --access-token-ttl SECONDS  access token lifetime (default 3600)
  --clock-tolerance SECONDS   tolerance used when checking expiry (default 0)
  --help                      show this text`;

const opts = parseArgs(process.argv.slice(2), {
  usage: USAGE,
  defaults: {
    port: 0,
    secretTtl: 0,
    initialAccessToken: undefined,
    cimd: false,
    deviceFlow: false,
    dpop: false,
    failUpdates: false,
    accessTokenTtl: 3600,
    clockTolerance: 0,
  },
  valued: {
    '--port': 'port',
    '--secret-ttl': 'secretTtl',
    '--initial-access-token': 'initialAccessToken',
    '--access-token-ttl': 'accessTokenTtl',
    '--clock-tolerance': 'clockTolerance',
  },
  strings: ['initialAccessToken'],
  switches: {
    '--cimd': ['cimd', true],
    '--device-flow': ['deviceFlow', true],
    '--dpop': ['dpop', true],
    '--fail-updates': ['failUpdates', true],
  },
});

// ---------------------------------------------------------------------------
// Constants and shared state

const ACCOUNT_ID = 'test-user';
const SUPPORTED_SCOPES = ['openid', 'offline_access', 'read', 'write'];
// Scopes that belong to OpenID Connect itself and never to a resource server.
const OIDC_ONLY_SCOPES = new Set(['openid', 'offline_access']);
const SECRET_AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

let failUpdates = opts.failUpdates;
// Milliseconds every RFC 7592 PUT waits before it is answered (POST /__admin/delay-updates).
let updateDelayMs = 0;
// While set (POST /__admin/reject-cimd), client ID metadata documents are refused by policy.
let rejectCimd = false;

let counts = freshCounts();

function isHttpUrl(value) {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function splitScope(value) {
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : [];
}

function isLoopbackHost(hostname) {
  return hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
}

// ---------------------------------------------------------------------------
// Listen first, so that the issuer can carry the real port.

const server = await listenOnLoopback(opts.port);
const { port } = server.address();
const issuer = `http://${HOST}:${port}`;

// ---------------------------------------------------------------------------
// Provider configuration

// A fresh signing key per run, so that the library does not fall back to its
// development keys.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

async function getResourceServerInfo(ctx, resourceIndicator) {
  if (!isHttpUrl(resourceIndicator)) {
    throw new errors.InvalidTarget('resource must be an http(s) URL');
  }
  // The resource server accepts read and write, plus whatever non-OIDC scope the
  // current request or the grant being used carries.
  const scopes = new Set(['read', 'write']);
  const sources = [
    ctx.oidc.params?.scope,
    ctx.oidc.entities?.AuthorizationCode?.scope,
    ctx.oidc.entities?.RefreshToken?.scope,
  ];
  for (const source of sources) {
    for (const scope of splitScope(source)) {
      if (!OIDC_ONLY_SCOPES.has(scope)) scopes.add(scope);
    }
  }
  return {
    audience: resourceIndicator,
    scope: [...scopes].join(' '),
    accessTokenFormat: 'opaque',
    accessTokenTTL: opts.accessTokenTtl,
  };
}

// Lets client ID metadata documents be served by the test itself on plain HTTP
// at 127.0.0.1: the client_id stays `https://127.0.0.1:PORT/...` (the library only
// accepts https client ids) and the fetch goes to `http://127.0.0.1:PORT/...`,
// without the library's guard against loopback addresses.
async function harnessFetch(url, options) {
  const target = new URL(url);
  if (opts.cimd && isLoopbackHost(target.hostname)) {
    if (target.protocol === 'https:') target.protocol = 'http:';
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(target, rest);
  }
  return globalThis.fetch(url, options);
}

const configuration = {
  clients: [],
  jwks: { keys: [signingJwk] },
  scopes: SUPPORTED_SCOPES,
  // Only the authorization code flow (no implicit, no hybrid).
  responseTypes: ['code'],
  clockTolerance: opts.clockTolerance,
  // Cookies stay unsigned (no cookies.keys) so that the resume cookie can be
  // supplied for clients without a cookie jar (see the headless login below).
  pkce: { required: () => true },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    registration: {
      enabled: true,
      initialAccessToken: opts.initialAccessToken ?? false,
    },
    registrationManagement: {
      enabled: true,
      rotateRegistrationAccessToken: true,
    },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource sent: no default one; the token then carries the granted
      // scopes without an audience.
      defaultResource: async (ctx, client, oneOf) => oneOf,
      // A code or refresh token granted for one resource yields a token for that
      // resource even when the token request repeats no `resource`.
      useGrantedResource: async () => true,
      getResourceServerInfo,
    },
    ...(opts.deviceFlow ? { deviceFlow: { enabled: true } } : {}),
    // DPoP is on by default in oidc-provider 9; nonces need a secret to derive them from.
    ...(opts.dpop ? {
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
    } : {}),
    ...(opts.cimd ? {
      clientIdMetadataDocument: {
        enabled: true,
        ack: 'draft-02',
        // Keep documents no longer than the minimum allowed, so a test that
        // changes its document sees the change soon.
        cacheDuration: { min: 0, max: 60 },
      },
    } : {}),
  },
  // Refresh tokens for every code exchange, as long as the client may use them.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  // There is no lasting browser session in these tests, so tokens must not be
  // bound to one.
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: () => opts.accessTokenTtl,
    ClientCredentials: () => opts.accessTokenTtl,
    AuthorizationCode: 60,
    Grant: 14 * 24 * 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
  },
  fetch: harnessFetch,
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);

// ---------------------------------------------------------------------------
// Middleware, in the order they run (all before oidc-provider's own routes).

const REG_CLIENT_PATH = /^\/reg\/([^/]+)$/;
const INTERACTION_PATH = /^\/interaction\/([^/]+)$/;
const RESUME_PATH = /^\/auth\/([^/]+)$/;

// 1. Counting.
provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__admin/')) {
    await next();
    return;
  }
  const entry = { method: ctx.method, path: ctx.path };
  counts.requests.push(entry);
  const tally = counts; // a reset during the request must not be undone by it
  try {
    await next();
  } finally {
    entry.status = ctx.status;
    const { method, path } = ctx;
    if (method === 'POST' && path === '/reg') {
      if (ctx.status === 201) tally.registrations += 1;
    } else if (REG_CLIENT_PATH.test(path)) {
      if (method === 'PUT') tally.updates += 1;
      else if (method === 'GET') tally.reads += 1;
      else if (method === 'DELETE') tally.deletes += 1;
    } else if (method === 'POST' && path === '/token') {
      let grantType;
      try {
        grantType = ctx.oidc?.params?.grant_type ?? ctx.oidc?.body?.grant_type;
      } catch {
        grantType = undefined;
      }
      const key = `token_${grantType}`;
      if (typeof grantType === 'string' && Object.hasOwn(tally, key) && key !== 'token_other') {
        tally[key] += 1;
      } else {
        tally.token_other += 1;
      }
    } else if (method === 'GET' && path.startsWith('/.well-known/')) {
      tally.discovery += 1;
    }
  }
});

// 2. Admin endpoints.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/__admin/')) {
    await next();
    return;
  }
  ctx.set('cache-control', 'no-store');
  if (ctx.method === 'GET' && ctx.path === '/__admin/counts') {
    ctx.body = countsSnapshot(counts);
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/__admin/reset-counts') {
    counts = freshCounts();
    ctx.body = { ok: true };
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/__admin/fail-updates') {
    const on = ctx.query.on;
    if (on !== '1' && on !== '0') {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'on must be 1 or 0' };
      return;
    }
    failUpdates = on === '1';
    ctx.body = { fail_updates: failUpdates };
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/__admin/delay-updates') {
    const ms = ctx.query.ms;
    if (typeof ms !== 'string' || !/^\d+$/.test(ms) || Number(ms) > 600000) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'ms must be an integer from 0 to 600000' };
      return;
    }
    updateDelayMs = Number(ms);
    ctx.body = { update_delay_ms: updateDelayMs };
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/__admin/reject-cimd') {
    const on = ctx.query.on;
    if (on !== '1' && on !== '0') {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'on must be 1 or 0' };
      return;
    }
    rejectCimd = on === '1';
    ctx.body = { reject_cimd: rejectCimd };
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/__admin/approve-device') {
    ctx.body = await decideDevice(String(ctx.query.user_code || ''), ctx.query.deny === '1');
    if (ctx.body.error) ctx.status = 400;
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/__admin/state') {
    ctx.body = {
      fail_updates: failUpdates, update_delay_ms: updateDelayMs, secret_ttl: opts.secretTtl, issuer,
    };
    return;
  }
  ctx.status = 404;
  ctx.body = { error: 'not_found' };
});

// The user's decision on a device login (RFC 8628), as the provider's own confirmation page
// would record it: the pending device code found by its user code gets the account and a
// grant for everything it asked for, or the error `access_denied`. The client's next poll
// then gets its tokens, or that error.
async function decideDevice(userCode, deny) {
  // The provider stores user codes without their mask and in upper case.
  const normalized = userCode.toUpperCase().replace(/[^A-Z0-9]/g, '');
  const code = normalized ? await provider.DeviceCode.findByUserCode(normalized) : undefined;
  if (!code) {
    return { error: 'invalid_request', error_description: 'no pending device login has that user code' };
  }
  if (deny) {
    code.error = 'access_denied';
    code.errorDescription = 'the user refused the device login';
  } else {
    const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: code.clientId });
    const requested = splitScope(code.scope);
    if (requested.length) grant.addOIDCScope(requested.join(' '));
    const resourceScopes = requested.filter((s) => !OIDC_ONLY_SCOPES.has(s));
    const resources = [code.resource].flat().filter((r) => typeof r === 'string');
    for (const resource of resources) {
      if (resourceScopes.length) grant.addResourceScope(resource, resourceScopes.join(' '));
    }
    code.accountId = ACCOUNT_ID;
    code.grantId = await grant.save();
    code.authTime = nowSeconds();
  }
  await code.save();
  return { approved: !deny };
}

// 2b. A policy that refuses client ID metadata documents: the authorization endpoint
// answers a CIMD client (an https client_id) with the standard error redirect
// `unauthorized_client` to its loopback redirect URI, state and iss included, as a server
// that will not trust that document does.
provider.use(async (ctx, next) => {
  if (rejectCimd && ctx.method === 'GET' && ctx.path === '/auth') {
    const clientId = String(ctx.query.client_id || '');
    const redirectUri = String(ctx.query.redirect_uri || '');
    let target = null;
    try {
      target = new URL(redirectUri);
    } catch {
      target = null;
    }
    if (clientId.startsWith('https://') && target && isLoopbackHost(target.hostname)) {
      target.searchParams.set('error', 'unauthorized_client');
      target.searchParams.set('error_description', 'this server does not accept that client metadata document');
      if (ctx.query.state) target.searchParams.set('state', String(ctx.query.state));
      target.searchParams.set('iss', issuer);
      ctx.status = 303;
      ctx.redirect(target.href);
      return;
    }
  }
  await next();
});

// 3. Slow and failing RFC 7592 updates. Whether a PUT fails is decided when it arrives,
// so switching failures off during a delay does not change the fate of a PUT already
// waiting. A delayed PUT is carried out even if its client has gone away meanwhile, as a
// real server would.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'PUT' || !REG_CLIENT_PATH.test(ctx.path)) {
    await next();
    return;
  }
  const fail = failUpdates;
  if (updateDelayMs > 0) {
    // Read the body now: a client that goes away during the delay takes its socket, and
    // the body with it. oidc-provider then uses `ctx.request.body`.
    const chunks = [];
    try {
      for await (const chunk of ctx.req) chunks.push(chunk);
    } catch {
      // Keep what arrived.
    }
    ctx.request.body = Buffer.concat(chunks);
    await new Promise((resolve) => { setTimeout(resolve, updateDelayMs); });
  }
  if (fail) {
    ctx.status = 500;
    ctx.set('cache-control', 'no-store');
    ctx.body = { error: 'server_error' };
    return;
  }
  await next();
});

// 4. Expiring, rotating client secrets.
async function rotateSecret(ctx) {
  const body = ctx.body;
  if (!body || typeof body !== 'object' || typeof body.client_id !== 'string') return;
  if (!SECRET_AUTH_METHODS.has(body.token_endpoint_auth_method)) return;
  const stored = await provider.Client.adapter.find(body.client_id);
  if (!stored) return;
  const clientSecret = randomBytes(32).toString('base64url');
  const expiresAt = nowSeconds() + opts.secretTtl;
  await provider.Client.adapter.upsert(body.client_id, {
    ...stored,
    client_secret: clientSecret,
    client_secret_expires_at: expiresAt,
  });
  body.client_secret = clientSecret;
  body.client_secret_expires_at = expiresAt;
}

provider.use(async (ctx, next) => {
  await next();
  if (opts.secretTtl <= 0) return;
  const registered = ctx.method === 'POST' && ctx.path === '/reg' && ctx.status === 201;
  const updated = ctx.method === 'PUT' && REG_CLIENT_PATH.test(ctx.path) && ctx.status === 200;
  if (registered || updated) await rotateSecret(ctx);
});

// 5. Headless login and consent.
provider.use(async (ctx, next) => {
  // A client without a cookie jar does not send back the resume cookie that
  // /auth set; the uid in the path is the same value, so supply it.
  const resume = ctx.method === 'GET' && RESUME_PATH.exec(ctx.path);
  if (resume) {
    const name = provider.cookieName('resume');
    if (!ctx.cookies.get(name)) {
      const existing = ctx.req.headers.cookie;
      const added = `${name}=${resume[1]}`;
      ctx.req.headers.cookie = existing ? `${existing}; ${added}` : added;
    }
    await next();
    return;
  }

  const match = ctx.method === 'GET' && INTERACTION_PATH.exec(ctx.path);
  if (!match) {
    await next();
    return;
  }

  ctx.set('cache-control', 'no-store');
  const interaction = await provider.Interaction.find(match[1]);
  if (!interaction) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: 'interaction not found or expired' };
    return;
  }

  const { params, prompt } = interaction;
  const details = prompt?.details ?? {};

  let grant;
  if (interaction.grantId) grant = await provider.Grant.find(interaction.grantId);
  if (!grant) {
    grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: params.client_id });
  }

  // Grant everything asked for: the requested scopes (OIDC and resource ones),
  // the requested claims, and each requested resource with the non-OIDC scopes.
  const requested = splitScope(params.scope);
  const oidcScopes = new Set([...requested, ...(details.missingOIDCScope ?? [])]);
  if (oidcScopes.size) grant.addOIDCScope([...oidcScopes].join(' '));

  const claims = new Set(details.missingOIDCClaims ?? []);
  if (typeof params.claims === 'string') {
    try {
      const parsed = JSON.parse(params.claims);
      for (const part of [parsed?.id_token, parsed?.userinfo]) {
        if (part && typeof part === 'object') Object.keys(part).forEach((c) => claims.add(c));
      }
    } catch {
      // oidc-provider already validated the claims parameter; ignore.
    }
  }
  if (claims.size) grant.addOIDCClaims([...claims]);

  const resourceScopes = requested.filter((s) => !OIDC_ONLY_SCOPES.has(s));
  const resources = [params.resource].flat().filter((r) => typeof r === 'string');
  for (const resource of resources) {
    if (resourceScopes.length) grant.addResourceScope(resource, resourceScopes.join(' '));
  }
  for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, [scopes].flat().join(' '));
  }

  const grantId = await grant.save();

  interaction.result = {
    login: { accountId: ACCOUNT_ID },
    consent: { grantId },
  };
  await interaction.save(Math.max(interaction.exp - nowSeconds(), 1));

  ctx.status = 303;
  ctx.redirect(interaction.returnTo);
});

// ---------------------------------------------------------------------------
// Serve, announce, and stop on signal or when stdin closes.

server.on('request', provider.callback());
serveUntilStopped(server, issuer);
