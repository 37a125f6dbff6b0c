// Test authorization server for Tenure's integration tests, built on the MCP
// TypeScript SDK (@modelcontextprotocol/sdk, pinned in package.json).
//
// One Express app on 127.0.0.1 serves:
//   - the SDK's own authorization server, `mcpAuthRouter`, with an in-memory,
//     auto-approving provider written here (rotating refresh tokens, PKCE);
//   - a real MCP server of the SDK (`McpServer`, Streamable HTTP, stateless) at
//     /mcp, behind the SDK's `requireBearerAuth`;
//   - request counters and a few switches under /__admin/ for the tests.
//
// The SDK's client authentication, secret expiry, validation and rate limits are
// left as they are: the tests are meant to meet them.
//
// stdout carries exactly one line: `ready ISSUER`, ISSUER being the `issuer` the
// metadata publishes (with the SDK's trailing slash). Everything else goes to stderr.

import { randomBytes } from 'node:crypto';
import process from 'node:process';

import {
  HOST, countsSnapshot, freshCounts, keepStdoutForReadyLine, listenOnLoopback, nowSeconds, parseArgs,
  serveUntilStopped,
} from '../harness-common.mjs';

// Keep stdout for the ready line only: anything a library prints goes to stderr.
keepStdoutForReadyLine();

const { default: express } = await import('express');
const { mcpAuthRouter, getOAuthProtectedResourceMetadataUrl } = await import(
  '@modelcontextprotocol/sdk/server/auth/router.js'
);
const { requireBearerAuth } = await import('@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js');
const { InvalidGrantError, InvalidScopeError, InvalidTokenError } = await import(
  '@modelcontextprotocol/sdk/server/auth/errors.js'
);
const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { createMcpExpressApp } = await import('@modelcontextprotocol/sdk/server/express.js');

// ---------------------------------------------------------------------------
// Command line

const DEFAULT_SECRET_TTL = 30 * 24 * 3600; // the SDK's own default

const USAGE = `usage: node server.mjs [options]
  --port N                    port on 127.0.0.1 (0 = pick a free port; default 0)
  --secret-ttl SECONDS        lifetime of the client secrets the SDK issues at
                              registration (0 = never expire; default ${DEFAULT_SECRET_TTL},
                              the SDK's default of 30 days)
  --access-token-ttl SECONDS  access token lifetime (default 3600)
  --no-rate-limit             turn off the SDK's rate limits (registration: 20 an
                              hour; token: 50 and authorization: 100 per 15 minutes)
  --help                      show this text`;

const opts = parseArgs(process.argv.slice(2), {
  usage: USAGE,
  defaults: {
    port: 0,
    secretTtl: DEFAULT_SECRET_TTL,
    accessTokenTtl: 3600,
    rateLimit: true,
  },
  valued: {
    '--port': 'port',
    '--secret-ttl': 'secretTtl',
    '--access-token-ttl': 'accessTokenTtl',
  },
  switches: { '--no-rate-limit': ['rateLimit', false] },
});

// ---------------------------------------------------------------------------
// Constants and helpers

const USER = 'test-user';
const SCOPES_SUPPORTED = ['mcp:tools'];
const CODE_TTL_SECONDS = 600;

const newToken = () => randomBytes(32).toString('base64url');

let counts = freshCounts('mcp');

// ---------------------------------------------------------------------------
// The provider: everything in memory, the user always consents.

class MemoryProvider {
  constructor() {
    this.clients = new Map(); // client_id -> client information, as registered
    this.codes = new Map(); // code -> { clientId, challenge, redirectUri, scopes, resource, expiresAt }
    this.accessTokens = new Map(); // token -> { clientId, scopes, resource, expiresAt }
    this.refreshTokens = new Map(); // token -> { clientId, scopes, resource }

    const clients = this.clients;
    this.clientsStore = {
      async getClient(clientId) {
        return clients.get(clientId);
      },
      // The SDK has already generated client_id, client_secret and the expiry.
      async registerClient(client) {
        clients.set(client.client_id, { ...client });
        return client;
      },
    };
  }

  async authorize(client, params, res) {
    const code = newToken();
    this.codes.set(code, {
      clientId: client.client_id,
      challenge: params.codeChallenge,
      redirectUri: params.redirectUri,
      scopes: this.grantedScopes(client, params.scopes),
      resource: params.resource?.href,
      expiresAt: nowSeconds() + CODE_TTL_SECONDS,
    });
    const target = new URL(params.redirectUri);
    target.searchParams.set('code', code);
    if (params.state !== undefined) target.searchParams.set('state', params.state);
    res.redirect(302, target.href);
  }

  // What was asked for, or else what the client registered with.
  grantedScopes(client, requested) {
    const asked = (requested ?? []).filter(Boolean);
    if (asked.length) return asked;
    return (client.scope ?? '').split(' ').filter(Boolean);
  }

  liveCode(client, code) {
    const entry = this.codes.get(code);
    if (!entry || entry.clientId !== client.client_id) {
      throw new InvalidGrantError('Invalid authorization code');
    }
    if (entry.expiresAt < nowSeconds()) {
      this.codes.delete(code);
      throw new InvalidGrantError('Authorization code has expired');
    }
    return entry;
  }

  async challengeForAuthorizationCode(client, code) {
    return this.liveCode(client, code).challenge;
  }

  // The SDK has checked the PKCE verifier already (against the challenge above).
  async exchangeAuthorizationCode(client, code, _verifier, redirectUri, resource) {
    const entry = this.liveCode(client, code);
    if (redirectUri !== undefined && redirectUri !== entry.redirectUri) {
      throw new InvalidGrantError('redirect_uri does not match the one of the authorization request');
    }
    this.codes.delete(code); // one use only
    return this.issue(client.client_id, entry.scopes, resource?.href ?? entry.resource);
  }

  // Every use rotates the refresh token: the one presented stops working at once.
  async exchangeRefreshToken(client, refreshToken, scopes, resource) {
    const entry = this.refreshTokens.get(refreshToken);
    if (!entry || entry.clientId !== client.client_id) {
      throw new InvalidGrantError('Invalid refresh token');
    }
    let granted = entry.scopes;
    if (scopes && scopes.filter(Boolean).length) {
      const asked = scopes.filter(Boolean);
      const extra = asked.filter((s) => !entry.scopes.includes(s));
      if (extra.length) throw new InvalidScopeError(`Scope not granted: ${extra.join(' ')}`);
      granted = asked;
    }
    this.refreshTokens.delete(refreshToken);
    return this.issue(client.client_id, granted, resource?.href ?? entry.resource);
  }

  issue(clientId, scopes, resource) {
    const accessToken = newToken();
    const refreshToken = newToken();
    this.accessTokens.set(accessToken, {
      clientId, scopes, resource, expiresAt: nowSeconds() + opts.accessTokenTtl,
    });
    this.refreshTokens.set(refreshToken, { clientId, scopes, resource });
    const answer = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: opts.accessTokenTtl,
      refresh_token: refreshToken,
    };
    if (scopes.length) answer.scope = scopes.join(' ');
    return answer;
  }

  // An expired token is still described (with its expiry), so that the SDK's
  // requireBearerAuth answers with its own "Token has expired".
  async verifyAccessToken(token) {
    const entry = this.accessTokens.get(token);
    if (!entry) throw new InvalidTokenError('Invalid or unknown access token');
    return {
      token,
      clientId: entry.clientId,
      scopes: entry.scopes,
      expiresAt: entry.expiresAt,
      resource: entry.resource ? new URL(entry.resource) : undefined,
      extra: { user: USER },
    };
  }

  sizes() {
    return {
      clients: this.clients.size,
      codes: this.codes.size,
      access_tokens: this.accessTokens.size,
      refresh_tokens: this.refreshTokens.size,
    };
  }
}

// ---------------------------------------------------------------------------
// Listen first, so that the issuer can carry the real port.

const server = await listenOnLoopback(opts.port);
const { port } = server.address();
const issuerUrl = new URL(`http://${HOST}:${port}/`);
const mcpUrl = new URL('/mcp', issuerUrl);
const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(mcpUrl);

// The authorization server half: a provider and the SDK's router around it. A
// "restart" (POST /__admin/forget-clients) builds both anew, which also forgets
// what the SDK's rate limiters have counted.
function buildAuth() {
  const provider = new MemoryProvider();
  const limits = opts.rateLimit ? {} : { rateLimit: false };
  const router = mcpAuthRouter({
    provider,
    issuerUrl,
    scopesSupported: SCOPES_SUPPORTED,
    resourceServerUrl: mcpUrl,
    resourceName: 'Tenure test MCP server',
    clientRegistrationOptions: { clientSecretExpirySeconds: opts.secretTtl, ...limits },
    authorizationOptions: { ...limits },
    tokenOptions: { ...limits },
  });
  return { provider, router };
}
let auth = buildAuth();
const issuer = issuerUrl.href;

// ---------------------------------------------------------------------------
// The MCP server: one fixed tool, a fresh server and transport per request
// (stateless Streamable HTTP, as in the SDK's stateless example).

function buildMcpServer() {
  const mcp = new McpServer({ name: 'tenure-test-mcp', version: '0.0.0' });
  mcp.registerTool('whoami', {
    description: 'Names the user and the client the access token was issued to.',
  }, async (extra) => ({
    content: [{ type: 'text', text: `${USER} (client ${extra.authInfo?.clientId ?? 'unknown'})` }],
  }));
  return mcp;
}

async function handleMcp(req, res) {
  if (req.method !== 'POST') {
    res.status(405).set('Allow', 'POST').json({
      jsonrpc: '2.0',
      error: { code: -32000, message: 'Method not allowed: this server is stateless, use POST.' },
      id: null,
    });
    return;
  }
  const mcp = buildMcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    transport.close().catch(() => {});
    mcp.close().catch(() => {});
  });
  try {
    await mcp.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (error) {
    console.error('MCP request failed:', error);
    if (!res.headersSent) {
      res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  }
}

// ---------------------------------------------------------------------------
// Counting

// Paths are compared with repeated leading slashes folded, so that a test that
// appends "/__admin/..." to the issuer (which ends in a slash) still gets there.
const folded = (path) => path.replace(/^\/{2,}/, '/');
// (Not through URL(): a path that starts with // would read as a host.)
const pathOf = (req) => req.originalUrl.split('?')[0];

function tally(target, method, path, status, body) {
  if (method === 'POST' && (path === '/register' || path === '/register/')) {
    if (status >= 200 && status < 300) target.registrations += 1;
  } else if (path.startsWith('/register/')) {
    if (method === 'PUT') target.updates += 1;
    else if (method === 'GET') target.reads += 1;
    else if (method === 'DELETE') target.deletes += 1;
  } else if (method === 'POST' && (path === '/token' || path === '/token/')) {
    const grantType = body && typeof body === 'object' ? body.grant_type : undefined;
    const key = `token_${grantType}`;
    if (['authorization_code', 'refresh_token', 'client_credentials'].includes(grantType)) target[key] += 1;
    else target.token_other += 1;
  } else if (method === 'GET' && path.startsWith('/.well-known/')) {
    target.discovery += 1;
  }
  if (path === '/mcp' || path.startsWith('/mcp/')) target.mcp += 1;
}

function countRequests(req, res, next) {
  const path = pathOf(req);
  if (folded(path).startsWith('/__admin/')) {
    next();
    return;
  }
  const entry = { method: req.method, path };
  const target = counts; // a reset during the request must not be undone by it
  target.requests.push(entry);
  res.on('finish', () => {
    entry.status = res.statusCode;
    tally(target, req.method, path, res.statusCode, req.body);
  });
  next();
}

// ---------------------------------------------------------------------------
// Admin endpoints (tests only)

function admin(req, res, next) {
  const path = folded(pathOf(req));
  if (!path.startsWith('/__admin/')) {
    next();
    return;
  }
  res.set('Cache-Control', 'no-store');
  if (req.method === 'GET' && path === '/__admin/counts') {
    res.json(countsSnapshot(counts));
    return;
  }
  if (req.method === 'POST' && path === '/__admin/reset-counts') {
    counts = freshCounts('mcp');
    res.json({ ok: true });
    return;
  }
  if (req.method === 'POST' && path === '/__admin/forget-clients') {
    const forgotten = auth.provider.sizes();
    // Outside this request's stack: express-rate-limit objects to limiters made
    // while a request is being handled.
    setImmediate(() => {
      auth = buildAuth();
      res.json({ ok: true, forgotten });
    });
    return;
  }
  if (req.method === 'GET' && path === '/__admin/state') {
    res.json({
      issuer,
      secret_ttl: opts.secretTtl,
      access_token_ttl: opts.accessTokenTtl,
      rate_limit: opts.rateLimit,
      mcp: mcpUrl.href,
      ...auth.provider.sizes(),
    });
    return;
  }
  res.status(404).json({ error: 'not_found' });
}

// ---------------------------------------------------------------------------
// The app

// What a TypeScript MCP server typically is: the SDK's Express app (Host header
// check for 127.0.0.1, JSON bodies) with the auth router at its root and the MCP
// endpoint behind requireBearerAuth.
const mcpApp = createMcpExpressApp({ host: HOST });
mcpApp.use((req, res, next) => auth.router(req, res, next));
const bearer = requireBearerAuth({
  verifier: { verifyAccessToken: (token) => auth.provider.verifyAccessToken(token) },
  resourceMetadataUrl,
});
mcpApp.all('/mcp', bearer, handleMcp);

const app = express();
app.use(countRequests);
app.use(admin);
app.use(mcpApp);

// ---------------------------------------------------------------------------
// Serve, announce, and stop on signal or when stdin closes.

server.on('request', app);
serveUntilStopped(server, issuer);
