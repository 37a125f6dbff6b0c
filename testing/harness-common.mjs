// Plumbing shared by the node test servers in this folder (oidc-provider/server.mjs
// and mcp-ts-sdk/server.mjs): stdout kept for the ready line, the command line
// parser, listening on the loopback interface, the request counters both publish at
// /__admin/counts, and stopping on a signal or when stdin ends.
//
// Node's own modules only: each server resolves its libraries from its own folder.

import { createServer } from 'node:http';
import process from 'node:process';

export const HOST = '127.0.0.1';

export const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// stdout

// Sends what console.info and console.log print to stderr, so that stdout carries the
// ready line alone. Call it before a library that prints is loaded.
export function keepStdoutForReadyLine() {
  console.info = (...args) => console.error(...args);
  console.log = (...args) => console.error(...args);
}

// ---------------------------------------------------------------------------
// Command line

// Parses `--flag VALUE`, `--flag=VALUE` and `--switch` arguments into a copy of
// `defaults`. `valued` maps a flag to its key, whose value must be a non-negative
// integer unless the key is in `strings` (then any non-empty text); `switches` maps a
// flag to the [key, value] it sets. --help (or -h) prints `usage` on stdout and exits
// 0; anything wrong prints a message and `usage` on stderr and exits 2.
export function parseArgs(argv, { usage, defaults, valued, switches = {}, strings = [] }) {
  const opts = { ...defaults };
  const textKeys = new Set(strings);

  const fail = (msg) => {
    process.stderr.write(`${msg}\n${usage}\n`);
    process.exit(2);
  };

  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let inline;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq !== -1) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    if (Object.hasOwn(switches, arg)) {
      if (inline !== undefined) fail(`${arg} takes no value`);
      const [key, value] = switches[arg];
      opts[key] = value;
      continue;
    }
    const key = Object.hasOwn(valued, arg) ? valued[arg] : undefined;
    if (!key) fail(`unknown argument: ${arg}`);
    let value = inline;
    if (value === undefined) {
      i += 1;
      if (i >= argv.length) fail(`${arg} needs a value`);
      value = argv[i];
    }
    if (textKeys.has(key)) {
      if (!value) fail(`${arg} needs a non-empty value`);
      opts[key] = value;
    } else {
      if (!/^\d+$/.test(value)) fail(`${arg} needs a non-negative integer, got ${JSON.stringify(value)}`);
      opts[key] = Number(value);
    }
  }
  if (opts.port > 65535) fail('--port must be at most 65535');
  if (opts.accessTokenTtl === 0) fail('--access-token-ttl must be at least 1');
  return opts;
}

// ---------------------------------------------------------------------------
// Listening and stopping

// An HTTP server already listening on HOST:port (port 0: any free one), so that the
// issuer can carry the real port. Requests are handled once a listener is attached.
export async function listenOnLoopback(port) {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

// Stops the process on SIGTERM, SIGINT or the end of stdin (the test holding the other
// end of the pipe closed it or went away), then prints the one line a test waits for:
// `ready URL`. All state is in memory, so there is nothing to flush: it stops at once.
export function serveUntilStopped(server, url) {
  const stop = (code = 0) => {
    server.close();
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  process.stdin.on('end', () => stop(0));
  process.stdin.on('close', () => stop(0));
  process.stdin.on('error', () => stop(0));
  process.stdin.resume();

  process.stdout.write(`ready ${url}\n`);
}

// ---------------------------------------------------------------------------
// Request counters (GET /__admin/counts)

// All counters at zero (the `extra` ones after the common ones), and no requests.
export function freshCounts(...extra) {
  const counts = {
    registrations: 0,
    updates: 0,
    reads: 0,
    deletes: 0,
    token_authorization_code: 0,
    token_refresh_token: 0,
    token_client_credentials: 0,
    token_other: 0,
    discovery: 0,
  };
  for (const name of extra) counts[name] = 0;
  counts.requests = [];
  return counts;
}

// A copy of the counters to answer with, safe from requests still counting.
export const countsSnapshot = (counts) => ({ ...counts, requests: counts.requests.map((r) => ({ ...r })) });
