"""Test authorization server and MCP resource server for Tenure's integration tests.

One uvicorn process on 127.0.0.1 serving, from the MCP Python SDK (PyPI `mcp`):

- the SDK's authorization server routes (`create_auth_routes`): metadata, /authorize,
  /token, /register (RFC 7591), /revoke, backed by the in-memory provider below;
- an MCP server with one tool on Streamable HTTP at /mcp, behind the SDK's bearer
  middleware, with its protected resource metadata (RFC 9728);
- request counters and a few switches under /__admin/ (tests only).

stdout carries exactly one line, `ready ISSUER`, where ISSUER is the `issuer` of the
server metadata. Everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from argparse import ArgumentTypeError
from typing import Any
from urllib.parse import parse_qs

# The plumbing shared with the other Python test server lives one folder up.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness_common as common  # noqa: E402

# Keep stdout for the ready line alone: anything printed by a library goes to stderr.
READY_OUT = common.keep_stdout_for_ready_line()

USAGE = """usage: .venv/bin/python server.py [options]
  --port N                     port on 127.0.0.1 (0 = pick a free port; default 0)
  --secret-ttl SECONDS         client secrets expire SECONDS after registration
                               (0 = never; default 0)
  --access-token-ttl SECONDS   access token lifetime (default 3600)
  --refresh-token-ttl SECONDS  refresh token lifetime (0 = never; default 0)
  --plain-issuer               build the issuer from a string through AuthSettings,
                               which keeps it without a trailing slash (default: a
                               bare AnyHttpUrl, which publishes "http://127.0.0.1:PORT/")
  --validate-token-resource    /mcp accepts only tokens issued for its own URL
                               (RFC 8707 resource), as AuthSettings.validate_token_resource
  --help                       show this text"""


def parse_args(argv: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "port": 0,
        "secret_ttl": 0,
        "access_token_ttl": 3600,
        "refresh_token_ttl": 0,
        "plain_issuer": False,
        "validate_token_resource": False,
    }
    valued = {
        "--port": "port",
        "--secret-ttl": "secret_ttl",
        "--access-token-ttl": "access_token_ttl",
        "--refresh-token-ttl": "refresh_token_ttl",
    }
    switches = {"--plain-issuer": "plain_issuer", "--validate-token-resource": "validate_token_resource"}

    def fail(message: str) -> None:
        sys.stderr.write(f"{message}\n{USAGE}\n")
        sys.exit(2)

    i = 0
    while i < len(argv):
        arg = argv[i]
        inline = None
        if arg.startswith("--") and "=" in arg:
            arg, inline = arg.split("=", 1)
        if arg in ("--help", "-h"):
            READY_OUT.write(f"{USAGE}\n")
            sys.exit(0)
        if arg in switches:
            if inline is not None:
                fail(f"{arg} takes no value")
            opts[switches[arg]] = True
            i += 1
            continue
        key = valued.get(arg)
        if key is None:
            fail(f"unknown argument: {arg}")
        value = inline
        if value is None:
            i += 1
            if i >= len(argv):
                fail(f"{arg} needs a value")
            value = argv[i]
        try:
            opts[key] = common.non_negative_int(value)
        except ArgumentTypeError as error:
            fail(f"{arg} {error}")
        i += 1
    error = common.limits_error(opts["port"], opts["access_token_ttl"])
    if error:
        fail(error)
    return opts


# Parse before the heavier imports, so a usage error answers at once.
OPTS = parse_args(sys.argv[1:])

import uvicorn  # noqa: E402
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool  # noqa: E402
from pydantic import AnyHttpUrl  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.authentication import AuthenticationMiddleware  # noqa: E402
from starlette.routing import Route  # noqa: E402

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware, get_access_token  # noqa: E402
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware  # noqa: E402
from mcp.server.auth.provider import (  # noqa: E402
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    ProviderTokenVerifier,
    RefreshToken,
    construct_redirect_uri,
)
from mcp.server.auth.routes import (  # noqa: E402
    build_metadata,
    build_resource_metadata_url,
    create_auth_routes,
    create_protected_resource_routes,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions  # noqa: E402
from mcp.server.lowlevel import Server  # noqa: E402
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager  # noqa: E402
from mcp.server.transport_security import TransportSecuritySettings  # noqa: E402
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken  # noqa: E402

log = logging.getLogger("test-server")

VALID_SCOPES = ["read", "write"]
DEFAULT_SCOPES = ["read"]
# Scopes a token needs for /mcp (also published as the resource's scopes_supported).
MCP_REQUIRED_SCOPES = ["read"]
AUTHORIZATION_CODE_TTL = 300
RESOURCE_OWNER = "test-user"


# ---------------------------------------------------------------------------
# The provider: everything in memory, every authorization approved at once.


class GrantedAccessToken(AccessToken):
    grant_id: str


class GrantedRefreshToken(RefreshToken):
    grant_id: str


class InMemoryProvider:
    """An `OAuthAuthorizationServerProvider` keeping clients, codes and tokens in dicts.

    The SDK's handlers do the checking (client authentication, secret expiry, PKCE,
    redirect URI, scopes, code and refresh token expiry); this class stores what they
    hand over and issues opaque random tokens. No method awaits between reading and
    changing the dicts, so each step is atomic on the one event loop.
    """

    def __init__(self, access_token_ttl: int, refresh_token_ttl: int) -> None:
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.forget()

    def forget(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, GrantedAccessToken] = {}
        self.refresh_tokens: dict[str, GrantedRefreshToken] = {}
        self.code_grants: dict[str, str] = {}

    # Clients -------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.clients[client_info.client_id] = client_info

    # Authorization: approve everything the SDK has validated -------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        code = secrets.token_urlsafe(32)
        if params.scopes is not None:
            scopes = list(params.scopes)
        else:
            scopes = client.scope.split() if client.scope else []
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=scopes,
            expires_at=time.time() + AUTHORIZATION_CODE_TTL,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject=RESOURCE_OWNER,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        found = self.codes.get(authorization_code)
        if found is None or found.client_id != client.client_id:
            return None
        return found

    # Tokens ----------------------------------------------------------------

    def _issue(
        self,
        client_id: str,
        scopes: list[str],
        refresh_scopes: list[str],
        resource: str | None,
        subject: str | None,
        grant_id: str,
    ) -> OAuthToken:
        now = int(time.time())
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self.access_tokens[access] = GrantedAccessToken(
            token=access,
            client_id=client_id,
            scopes=scopes,
            expires_at=now + self.access_token_ttl,
            resource=resource,
            subject=subject,
            grant_id=grant_id,
        )
        self.refresh_tokens[refresh] = GrantedRefreshToken(
            token=refresh,
            client_id=client_id,
            scopes=refresh_scopes,
            expires_at=now + self.refresh_token_ttl if self.refresh_token_ttl > 0 else None,
            resource=resource,
            subject=subject,
            grant_id=grant_id,
        )
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.access_token_ttl,
            scope=" ".join(scopes) if scopes else None,
            refresh_token=refresh,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        # A code is good for one exchange: take it out before issuing anything.
        self.codes.pop(authorization_code.code, None)
        return self._issue(
            client.client_id,
            authorization_code.scopes,
            authorization_code.scopes,
            authorization_code.resource,
            authorization_code.subject,
            grant_id=uuid.uuid4().hex,
        )

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> GrantedRefreshToken | None:
        found = self.refresh_tokens.get(refresh_token)
        if found is None or found.client_id != client.client_id:
            return None
        return found

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: GrantedRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        # Rotation: the presented refresh token stops working now. Access tokens issued
        # before keep working until they expire. A narrower `scope` narrows the new access
        # token only; the new refresh token keeps the grant's scopes (RFC 6749 section 6).
        self.refresh_tokens.pop(refresh_token.token, None)
        return self._issue(
            client.client_id,
            scopes,
            refresh_token.scopes,
            refresh_token.resource,
            refresh_token.subject,
            refresh_token.grant_id,
        )

    async def load_access_token(self, token: str) -> GrantedAccessToken | None:
        found = self.access_tokens.get(token)
        if found is None:
            return None
        if found.expires_at is not None and found.expires_at < time.time():
            self.access_tokens.pop(token, None)
            return None
        return found

    async def revoke_token(self, token: GrantedAccessToken | GrantedRefreshToken) -> None:
        # Revoking either kind ends the whole grant: its access and refresh tokens.
        grant_id = token.grant_id
        for store in (self.access_tokens, self.refresh_tokens):
            for key in [k for k, v in store.items() if v.grant_id == grant_id]:
                del store[key]


# ---------------------------------------------------------------------------
# The MCP server: one tool telling who called it.


async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
    return ListToolsResult(
        tools=[
            Tool(
                name="whoami",
                description="Returns the client_id and scopes of the access token used for this call.",
                input_schema={"type": "object", "properties": {}},
            )
        ]
    )


async def call_tool(ctx: Any, params: Any) -> CallToolResult:
    if params.name != "whoami":
        return CallToolResult(content=[TextContent(text=f"unknown tool: {params.name}")], is_error=True)
    token = get_access_token()
    who = {
        "client_id": token.client_id if token else None,
        "scopes": token.scopes if token else [],
        "resource": token.resource if token else None,
    }
    return CallToolResult(content=[TextContent(text=json.dumps(who))])


# ---------------------------------------------------------------------------
# Counting and admin endpoints, outside everything else.

REGISTER_ITEM = re.compile(r"^/register/.+")


async def read_whole_body(receive: Any) -> tuple[bytes, Any]:
    """Reads the request body and returns it with a `receive` that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away; let the app see that.
            pending = [message]
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            pending = []
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending:
            return pending.pop(0)
        return await receive()

    return body, replay


def form_value(body: bytes, name: str) -> str | None:
    try:
        values = parse_qs(body.decode("utf-8"), keep_blank_values=True).get(name)
    except UnicodeDecodeError:
        return None
    return values[0] if values else None


class Harness:
    """ASGI wrapper: counts requests, serves /__admin/, passes everything else on."""

    def __init__(self, app: Any, provider: InMemoryProvider, state: dict[str, Any]) -> None:
        self.app = app
        self.provider = provider
        self.state = state
        self.counts = common.fresh_counts("mcp")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        if path.startswith("/__admin/"):
            await self.admin(method, path, send)
            return

        entry: dict[str, Any] = {"method": method, "path": path}
        tally = self.counts  # a reset during this request must not be undone by it
        tally["requests"].append(entry)

        if method == "POST" and path == "/token":
            body, receive = await read_whole_body(receive)
            tally[common.token_counter(form_value(body, "grant_type"))] += 1
        elif REGISTER_ITEM.match(path) and method in common.REGISTER_ITEM_COUNTERS:
            tally[common.REGISTER_ITEM_COUNTERS[method]] += 1
        elif method == "GET" and path.startswith("/.well-known/"):
            tally["discovery"] += 1
        elif path == "/mcp" or path.startswith("/mcp/"):
            tally["mcp"] += 1

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                entry["status"] = status
                if method == "POST" and path == "/register" and 200 <= status < 300:
                    tally["registrations"] += 1
            await send(message)

        await self.app(scope, receive, counting_send)

    async def admin(self, method: str, path: str, send: Any) -> None:
        status, body = 200, None
        if method == "GET" and path == "/__admin/counts":
            body = common.counts_snapshot(self.counts)
        elif method == "POST" and path == "/__admin/reset-counts":
            self.counts = common.fresh_counts("mcp")
            body = {"ok": True}
        elif method == "POST" and path == "/__admin/forget-clients":
            self.provider.forget()
            body = {"ok": True}
        elif method == "GET" and path == "/__admin/state":
            body = {
                **self.state,
                "clients": len(self.provider.clients),
                "authorization_codes": len(self.provider.codes),
                "access_tokens": len(self.provider.access_tokens),
                "refresh_tokens": len(self.provider.refresh_tokens),
            }
        else:
            status, body = 404, {"error": "not_found"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------------------
# Assembly


def build_app(port: int) -> tuple[Any, str]:
    base = f"http://{common.HOST}:{port}"
    if OPTS["plain_issuer"]:
        # The way MCPServer(auth=AuthSettings(issuer_url="http://...")) gets it: no slash.
        issuer_url = AuthSettings(issuer_url=base, resource_server_url=None).issuer_url
    else:
        # The way the SDK's own example server builds it: a bare AnyHttpUrl, which
        # pydantic normalises to end in "/".
        issuer_url = AnyHttpUrl(base)

    registration_options = ClientRegistrationOptions(
        enabled=True,
        client_secret_expiry_seconds=OPTS["secret_ttl"] if OPTS["secret_ttl"] > 0 else None,
        valid_scopes=VALID_SCOPES,
        default_scopes=DEFAULT_SCOPES,
    )
    revocation_options = RevocationOptions(enabled=True)

    provider = InMemoryProvider(OPTS["access_token_ttl"], OPTS["refresh_token_ttl"])

    # The issuer exactly as the metadata document serialises it.
    metadata = build_metadata(issuer_url, None, registration_options, revocation_options)
    issuer = json.loads(metadata.model_dump_json(exclude_none=True))["issuer"]

    mcp_server = Server("tenure-test-mcp", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    session_manager = StreamableHTTPSessionManager(
        app=mcp_server,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
        ),
    )
    resource_url = AnyHttpUrl(f"{base}/mcp")
    resource_metadata_url = build_resource_metadata_url(resource_url)

    routes: list[Any] = []
    routes.extend(
        create_auth_routes(
            provider,
            issuer_url,
            client_registration_options=registration_options,
            revocation_options=revocation_options,
        )
    )
    routes.extend(
        create_protected_resource_routes(
            resource_url=resource_url,
            authorization_servers=[issuer_url],
            scopes_supported=MCP_REQUIRED_SCOPES,
            resource_name="Tenure test MCP server",
        )
    )
    routes.append(
        Route(
            "/mcp",
            endpoint=RequireAuthMiddleware(
                StreamableHTTPASGIApp(session_manager), MCP_REQUIRED_SCOPES, resource_metadata_url
            ),
        )
    )

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=BearerAuthBackend(
                    ProviderTokenVerifier(provider),
                    resource_server_url=resource_url if OPTS["validate_token_resource"] else None,
                ),
            ),
            Middleware(AuthContextMiddleware),
        ],
        lifespan=lambda _app: session_manager.run(),
    )
    state = {
        "issuer": issuer,
        "resource": str(resource_url),
        "secret_ttl": OPTS["secret_ttl"],
        "access_token_ttl": OPTS["access_token_ttl"],
        "refresh_token_ttl": OPTS["refresh_token_ttl"],
        "validate_token_resource": OPTS["validate_token_resource"],
    }
    return Harness(app, provider, state), issuer


# ---------------------------------------------------------------------------
# Serve, announce, and stop on SIGTERM, SIGINT or the end of stdin.


def force_exit_later(seconds: float) -> None:
    timer = threading.Timer(seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()


async def serve() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((common.HOST, OPTS["port"]))
    except OSError as error:
        log.error("cannot listen on %s:%s: %s", common.HOST, OPTS["port"], error)
        return 1
    sock.listen(128)
    port = sock.getsockname()[1]

    app, issuer = build_app(port)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=1, lifespan="on", ws="none")
    )

    def stop() -> None:
        server.should_exit = True
        force_exit_later(5)

    loop = asyncio.get_running_loop()

    def on_stdin_end() -> None:
        log.info("stdin closed; stopping")
        loop.call_soon_threadsafe(stop)

    # uvicorn takes SIGTERM/SIGINT while it serves (graceful shutdown, then re-raises
    # the signal to the handler found before). These handlers make that last step end
    # the process with status 0, and bound a shutdown that hangs.
    def on_signal(signum: int, frame: Any) -> None:
        force_exit_later(5)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            log.error("server did not start")
            return 1
        await asyncio.sleep(0.02)

    common.watch_stdin(on_stdin_end)
    common.announce_ready(READY_OUT, issuer)
    await task
    return 0


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code = asyncio.run(serve())
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
