"""Test authorization server for Tenure's integration tests, built on Authlib.

One Flask app on 127.0.0.1 wired from Authlib's own pieces: the Flask
AuthorizationServer, RFC 7591 registration, RFC 7592 client configuration,
RFC 8414 metadata, the authorization code grant with PKCE (RFC 7636), refresh
tokens that rotate, client credentials, RFC 7009 revocation, RFC 7662
introspection and RFC 9207's `iss` on authorization responses. Everything is
kept in memory. Admin endpoints for tests live under /__admin/.

stdout carries exactly one line, `ready http://127.0.0.1:PORT`; everything
else goes to stderr.
"""

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
import time

# The plumbing shared with the other Python test server lives one folder up.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness_common as common  # noqa: E402

# Authlib refuses plain http unless told otherwise; this server only ever
# listens on the loopback interface.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

from flask import Flask, Response, json, jsonify  # noqa: E402
from flask import request as flask_request  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.flask_oauth2 import AuthorizationServer  # noqa: E402
from authlib.oauth2 import OAuth2Error  # noqa: E402
from authlib.oauth2.rfc6749 import (  # noqa: E402
    AccessDeniedError,
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    TokenMixin,
    grants,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6749.authenticate_client import (  # noqa: E402
    authenticate_client_secret_basic,
    authenticate_client_secret_post,
)
from authlib.oauth2.rfc6750 import InvalidTokenError  # noqa: E402
from authlib.oauth2.rfc7009 import RevocationEndpoint  # noqa: E402
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint  # noqa: E402
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint  # noqa: E402
from authlib.oauth2.rfc7636 import CodeChallenge  # noqa: E402
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # noqa: E402
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # noqa: E402
from authlib.oauth2 import rfc9207  # noqa: E402

TEST_USER_ID = "test-user"
AUTHORIZATION_CODE_TTL = 600
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials"]


# ---------------------------------------------------------------------------
# Command line


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python server.py",
        description="Authlib test authorization server (in memory, 127.0.0.1 only).",
        allow_abbrev=False,
    )
    parser.add_argument("--port", type=common.non_negative_int, default=0,
                        help="port on 127.0.0.1 (0 = pick a free port; default 0)")
    parser.add_argument("--secret-ttl", type=common.non_negative_int, default=0, metavar="SECONDS",
                        help="client secrets expire SECONDS after registration or update and "
                             "rotate on every update (0 = never; default 0)")
    parser.add_argument("--access-token-ttl", type=common.non_negative_int, default=3600,
                        metavar="SECONDS", help="access token lifetime (default 3600)")
    parser.add_argument("--rfc7592-errors", action="store_true",
                        help="answer a missing, wrong or old registration access token with "
                             "RFC 7592's 401 invalid_token instead of Authlib's 400 access_denied")
    parser.add_argument("--initial-access-token", metavar="TOKEN",
                        help='registration requires "Authorization: Bearer TOKEN"')
    parser.add_argument("--fail-updates", action="store_true",
                        help="start with RFC 7592 PUT failing with 500")
    opts = parser.parse_args(argv)
    error = common.limits_error(opts.port, opts.access_token_ttl)
    if error:
        parser.error(error)
    if opts.initial_access_token == "":
        parser.error("--initial-access-token needs a non-empty value")
    return opts


# ---------------------------------------------------------------------------
# In-memory models


def now():
    return int(time.time())


class User:
    def __init__(self, user_id):
        self.id = user_id

    def get_user_id(self):
        return self.id


TEST_USER = User(TEST_USER_ID)


class Client(ClientMixin):
    def __init__(self, info, metadata):
        self.client_id = info["client_id"]
        self.client_secret = info["client_secret"]
        self.client_id_issued_at = info["client_id_issued_at"]
        self.client_secret_expires_at = info["client_secret_expires_at"]
        self.metadata = dict(metadata)
        self.registration_access_token = None

    # What RFC 7592 reads back, together with the metadata.
    @property
    def client_info(self):
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_id_issued_at": self.client_id_issued_at,
            "client_secret_expires_at": self.client_secret_expires_at,
        }

    @property
    def client_metadata(self):
        return dict(self.metadata)

    @property
    def auth_method(self):
        return self.metadata.get("token_endpoint_auth_method", "client_secret_basic")

    def secret_expired(self):
        expires_at = self.client_secret_expires_at
        return bool(expires_at) and now() >= expires_at

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        uris = self.metadata.get("redirect_uris") or []
        return uris[0] if uris else None

    def get_allowed_scope(self, scope):
        # A client registered with a scope gets at most that scope; one
        # registered without gets whatever it asks for.
        if not scope:
            return ""
        registered = self.metadata.get("scope")
        if not registered:
            return list_to_scope(scope_to_list(scope))
        allowed = set(scope_to_list(registered))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in (self.metadata.get("redirect_uris") or [])

    def check_client_secret(self, client_secret):
        # Expiry is checked at client authentication (see expiring() below), not
        # here: RFC 7592 also calls this for a PUT that repeats the secret, and
        # renewing an expired secret must stay possible.
        if not self.client_secret or not isinstance(client_secret, str):
            return False
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.auth_method

    def check_response_type(self, response_type):
        # RFC 7591: response_types defaults to ["code"].
        return response_type in (self.metadata.get("response_types") or ["code"])

    def check_grant_type(self, grant_type):
        # RFC 7591: grant_types defaults to ["authorization_code"].
        return grant_type in (self.metadata.get("grant_types") or ["authorization_code"])


class AuthorizationCode(AuthorizationCodeMixin):
    def __init__(self, code, client_id, redirect_uri, scope, user_id,
                 code_challenge, code_challenge_method):
        self.code = code
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.user_id = user_id
        self.code_challenge = code_challenge
        self.code_challenge_method = code_challenge_method
        self.expires_at = now() + AUTHORIZATION_CODE_TTL

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class Token(TokenMixin):
    def __init__(self, data, client_id, user_id):
        self.access_token = data["access_token"]
        self.refresh_token = data.get("refresh_token")
        self.token_type = data.get("token_type", "Bearer")
        self.scope = data.get("scope", "")
        self.expires_in = data.get("expires_in", 0)
        self.issued_at = now()
        self.client_id = client_id
        self.user_id = user_id
        self.access_token_revoked = False
        self.refresh_token_revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def get_expires_at(self):
        return self.issued_at + self.expires_in

    def is_expired(self):
        return bool(self.expires_in) and now() >= self.get_expires_at()

    def is_revoked(self):
        return self.access_token_revoked

    def get_user(self):
        return User(self.user_id) if self.user_id else None

    def get_client(self):
        return STORE.clients.get(self.client_id)


class RegistrationAccessToken:
    """The bearer token that manages one client through RFC 7592."""

    def __init__(self, value, client_id):
        self.value = value
        self.client_id = client_id

    def check_client(self, client):
        return client.get_client_id() == self.client_id


class InitialAccessCredential:
    """What registration is authorized by (no token needed unless configured)."""

    def __init__(self, token=None):
        self.token = token


class Store:
    def __init__(self):
        self.forget()

    def forget(self):
        self.clients = {}
        self.codes = {}
        self.tokens_by_access = {}
        self.tokens_by_refresh = {}
        self.registration_tokens = {}

    def issue_registration_token(self, client):
        if client.registration_access_token:
            self.registration_tokens.pop(client.registration_access_token, None)
        value = generate_token(48)
        self.registration_tokens[value] = RegistrationAccessToken(value, client.client_id)
        client.registration_access_token = value
        return value

    def drop_client(self, client_id):
        client = self.clients.pop(client_id, None)
        if client and client.registration_access_token:
            self.registration_tokens.pop(client.registration_access_token, None)
        for code in [c for c, v in self.codes.items() if v.client_id == client_id]:
            del self.codes[code]
        for token in [t for t in self.tokens_by_access.values() if t.client_id == client_id]:
            token.access_token_revoked = True
            token.refresh_token_revoked = True


STORE = Store()


# ---------------------------------------------------------------------------
# Server-wide settings and switches, filled in by main().


class Settings:
    issuer = None
    secret_ttl = 0
    access_token_ttl = 3600
    rfc7592_errors = False
    initial_access_token = None
    fail_updates = False


SETTINGS = Settings()


COUNTS = common.fresh_counts()


def server_metadata():
    issuer = SETTINGS.issuer
    return AuthorizationServerMetadata({
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "registration_endpoint": f"{issuer}/register",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(ALL_AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(ALL_AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(SECRET_AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    })


# ---------------------------------------------------------------------------
# Authlib wiring


def expiring(stock_method):
    """Wrap one of Authlib's secret-based client authentication methods so that
    a client whose secret has expired is refused with invalid_client."""

    def authenticate(query_client, request):
        client = stock_method(query_client, request)
        if client is not None and client.secret_expired():
            raise InvalidClientError(
                status_code=401, description="The client secret has expired."
            )
        return client

    return authenticate


class S256CodeChallenge(CodeChallenge):
    # Only S256 is advertised; an explicit `plain` is refused. (A challenge sent
    # without any method still means `plain`, as RFC 7636 and Authlib say.)
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(ALL_AUTH_METHODS)

    def save_authorization_code(self, code, request):
        data = request.payload.data
        item = AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user_id=request.user.get_user_id(),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )
        STORE.codes[code] = item
        return item

    def query_authorization_code(self, code, client):
        item = STORE.codes.get(code)
        if item and item.client_id == client.get_client_id() and now() < item.expires_at:
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        STORE.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return User(authorization_code.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(ALL_AUTH_METHODS)
    # Rotation: every refresh gives a new refresh token, the old one is revoked.
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        token = STORE.tokens_by_refresh.get(refresh_token)
        if token and not token.refresh_token_revoked:
            return token
        return None

    def authenticate_user(self, refresh_token):
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token):
        refresh_token.refresh_token_revoked = True


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(SECRET_AUTH_METHODS)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = list(ALL_AUTH_METHODS)

    def query_token(self, token_string, token_type_hint):
        if token_type_hint == "access_token":
            return STORE.tokens_by_access.get(token_string)
        if token_type_hint == "refresh_token":
            return STORE.tokens_by_refresh.get(token_string)
        return STORE.tokens_by_access.get(token_string) or STORE.tokens_by_refresh.get(
            token_string
        )

    def revoke_token(self, token, request):
        token.access_token_revoked = True
        if request.form.get("token_type_hint") != "access_token":
            token.refresh_token_revoked = True


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = list(SECRET_AUTH_METHODS)

    def query_token(self, token_string, token_type_hint):
        token = None
        if token_type_hint != "refresh_token":
            token = STORE.tokens_by_access.get(token_string)
            if token is not None:
                return token
        token = STORE.tokens_by_refresh.get(token_string)
        if token is not None and token.refresh_token_revoked:
            # A refresh token that was rotated out or revoked is inactive.
            return None
        return token

    def check_permission(self, token, client, request):
        return token.client_id == client.get_client_id()

    def introspect_token(self, token):
        claims = {
            "active": True,
            "client_id": token.client_id,
            "token_type": token.token_type,
            "scope": token.get_scope(),
            "sub": token.user_id,
            "aud": token.client_id,
            "iss": SETTINGS.issuer,
            "exp": token.get_expires_at(),
            "iat": token.issued_at,
        }
        return {k: v for k, v in claims.items() if v is not None}


def registration_token_from(request):
    auth = request.headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def as_rfc6750_error(error):
    """The RFC 6750 answer for a token that does not authorize the request."""
    return InvalidTokenError(
        description="The registration access token is missing, unknown or no longer valid."
    ) if SETTINGS.rfc7592_errors else error


class Registration(ClientRegistrationEndpoint):
    def create_registration_response(self, request):
        try:
            return super().create_registration_response(request)
        except AccessDeniedError as error:
            raise as_rfc6750_error(error) from error

    def authenticate_token(self, request):
        expected = SETTINGS.initial_access_token
        if expected is None:
            return InitialAccessCredential()
        given = registration_token_from(request)
        if given is not None and secrets.compare_digest(given, expected):
            return InitialAccessCredential(given)
        return None

    def get_server_metadata(self):
        return server_metadata()

    def generate_client_info(self, request):
        info = super().generate_client_info(request)
        method = (request.payload.data or {}).get(
            "token_endpoint_auth_method", "client_secret_basic"
        )
        if SETTINGS.secret_ttl > 0 and method in SECRET_AUTH_METHODS:
            info["client_secret_expires_at"] = now() + SETTINGS.secret_ttl
        return info

    def save_client(self, client_info, client_metadata, request):
        client = Client(client_info, client_metadata)
        STORE.clients[client.client_id] = client
        STORE.issue_registration_token(client)
        return client

    def generate_client_registration_info(self, client, request):
        return {
            "registration_client_uri": f"{SETTINGS.issuer}/register/{client.client_id}",
            "registration_access_token": client.registration_access_token,
        }


class Configuration(ClientConfigurationEndpoint):
    def create_configuration_response(self, request):
        try:
            return super().create_configuration_response(request)
        except AccessDeniedError as error:
            raise as_rfc6750_error(error) from error

    def authenticate_token(self, request):
        value = registration_token_from(request)
        if value is None:
            return None
        return STORE.registration_tokens.get(value)

    def authenticate_client(self, request):
        client_id = (flask_request.view_args or {}).get("client_id")
        return STORE.clients.get(client_id)

    def revoke_access_token(self, *args):
        # Authlib 1.9.10 calls this as (request, token) although it documents
        # (token, request); accept both.
        for arg in args:
            if isinstance(arg, RegistrationAccessToken):
                STORE.registration_tokens.pop(arg.value, None)

    def check_permission(self, client, request):
        return True

    def delete_client(self, client, request):
        STORE.drop_client(client.client_id)

    def update_client(self, client, client_metadata, request):
        # RFC 7592 section 2.2: the request replaces every metadata value.
        client.metadata = dict(client_metadata)
        if SETTINGS.secret_ttl > 0 and client.auth_method in SECRET_AUTH_METHODS:
            client.client_secret = self.generate_client_secret(request)
            client.client_secret_expires_at = now() + SETTINGS.secret_ttl
        STORE.issue_registration_token(client)
        return client

    def generate_client_secret(self, request):
        return secrets.token_hex(24)

    def generate_client_registration_info(self, client, request):
        return {
            "registration_client_uri": f"{SETTINGS.issuer}/register/{client.client_id}",
            "registration_access_token": client.registration_access_token,
        }

    def get_server_metadata(self):
        return server_metadata()


class IssuerParameter(rfc9207.IssuerParameter):
    def get_issuer(self):
        return SETTINGS.issuer


def query_client(client_id):
    return STORE.clients.get(client_id)


def save_token(token_data, request):
    user = request.user
    client_id = request.client.get_client_id()
    token = Token(token_data, client_id, user.get_user_id() if user else None)
    STORE.tokens_by_access[token.access_token] = token
    if token.refresh_token:
        STORE.tokens_by_refresh[token.refresh_token] = token


# ---------------------------------------------------------------------------
# The Flask app


def build_app():
    app = Flask(__name__)
    ttl = SETTINGS.access_token_ttl
    app.config.update(
        OAUTH2_REFRESH_TOKEN_GENERATOR=True,
        OAUTH2_TOKEN_EXPIRES_IN={grant: ttl for grant in GRANT_TYPES},
    )

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_client_auth_method(
        "client_secret_basic", expiring(authenticate_client_secret_basic)
    )
    server.register_client_auth_method(
        "client_secret_post", expiring(authenticate_client_secret_post)
    )
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Registration)
    server.register_endpoint(Configuration)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_extension(IssuerParameter())

    # -- counting ---------------------------------------------------------

    @app.before_request
    def count_start():
        if flask_request.path.startswith("/__admin/"):
            return
        entry = {"method": flask_request.method, "path": flask_request.path}
        COUNTS["requests"].append(entry)
        flask_request.environ["tenure.count_entry"] = (COUNTS, entry)

    @app.after_request
    def count_end(response):
        recorded = flask_request.environ.get("tenure.count_entry")
        if not recorded:
            return response
        tally, entry = recorded
        entry["status"] = response.status_code
        method, path = flask_request.method, flask_request.path
        if method == "POST" and path == "/register":
            if response.status_code == 201:
                tally["registrations"] += 1
        elif path.startswith("/register/") and path.count("/") == 2:
            key = common.REGISTER_ITEM_COUNTERS.get(method)
            if key:
                tally[key] += 1
        elif method == "POST" and path == "/token":
            tally[common.token_counter(flask_request.form.get("grant_type"))] += 1
        elif method == "GET" and path.startswith("/.well-known/"):
            tally["discovery"] += 1
        return response

    # -- OAuth endpoints --------------------------------------------------

    @app.get("/.well-known/oauth-authorization-server")
    def metadata():
        response = jsonify(server_metadata())
        return response

    @app.get("/authorize")
    def authorize():
        # Headless: the test user approves everything at once.
        oauth_request = server.create_oauth2_request(None)
        try:
            grant = server.get_authorization_grant(oauth_request)
        except OAuth2Error as error:
            # Authlib's own answer when the response type is not supported (an
            # error redirect once the client and redirect_uri are known); RFC
            # 9207's iss is added to it as to every authorization response.
            error.state = oauth_request.payload.state
            response = server.handle_error_response(oauth_request, error)
            server.execute_hook("after_create_authorization_response", response)
            return response
        return server.create_authorization_response(
            request=oauth_request, grant_user=TEST_USER, grant=grant
        )

    @app.post("/token")
    def issue_token():
        return server.create_token_response()

    @app.post("/revoke")
    def revoke():
        return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

    @app.post("/introspect")
    def introspect():
        return server.create_endpoint_response(Introspection.ENDPOINT_NAME)

    @app.post("/register")
    def register():
        return server.create_endpoint_response(Registration.ENDPOINT_NAME)

    @app.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
    def configure(client_id):
        if flask_request.method == "PUT" and SETTINGS.fail_updates:
            return admin_json({"error": "server_error"}, 500)
        return server.create_endpoint_response(Configuration.ENDPOINT_NAME)

    # -- admin endpoints (tests only) ------------------------------------

    def admin_json(body, status=200):
        return Response(
            json.dumps(body), status=status,
            headers=[("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        )

    def on_off():
        value = flask_request.args.get("on")
        if value not in ("0", "1"):
            return None
        return value == "1"

    @app.get("/__admin/counts")
    def admin_counts():
        return admin_json(common.counts_snapshot(COUNTS))

    @app.post("/__admin/reset-counts")
    def admin_reset_counts():
        global COUNTS
        COUNTS = common.fresh_counts()
        return admin_json({"ok": True})

    @app.post("/__admin/forget-clients")
    def admin_forget_clients():
        forgotten = len(STORE.clients)
        STORE.forget()
        return admin_json({"ok": True, "forgotten_clients": forgotten})

    @app.post("/__admin/fail-updates")
    def admin_fail_updates():
        on = on_off()
        if on is None:
            return admin_json(
                {"error": "invalid_request", "error_description": "on must be 1 or 0"}, 400
            )
        SETTINGS.fail_updates = on
        return admin_json({"fail_updates": on})

    @app.get("/__admin/state")
    def admin_state():
        return admin_json({
            "issuer": SETTINGS.issuer,
            "fail_updates": SETTINGS.fail_updates,
            "secret_ttl": SETTINGS.secret_ttl,
            "access_token_ttl": SETTINGS.access_token_ttl,
            "rfc7592_errors": SETTINGS.rfc7592_errors,
            "initial_access_token": SETTINGS.initial_access_token is not None,
            "clients": len(STORE.clients),
        })

    @app.route("/__admin/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def admin_unknown(rest):
        return admin_json({"error": "not_found"}, 404)

    return app


class PlainLogHandler(WSGIRequestHandler):
    """werkzeug's request log line, without terminal colours."""

    def log_request(self, code="-", size="-"):
        self.log("info", '"%s" %s %s', self.requestline, code, size)


class Serialized:
    """One request at a time: the in-memory store then needs no finer locking,
    and two racing requests (say, two refreshes with one refresh token) get the
    answers a database transaction would give them."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Every answer here is built in full before the lock is let go.
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()


# ---------------------------------------------------------------------------
# Serve, announce, and stop on a signal or when stdin closes.


def stop(*_):
    try:
        sys.stderr.flush()
    finally:
        os._exit(0)


def main(argv):
    opts = parse_args(argv)

    # stdout is for the ready line only: anything else printed (Authlib prints
    # metadata validation errors on RFC 7592 PUT) goes to stderr.
    ready_out = common.keep_stdout_for_ready_line()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    SETTINGS.secret_ttl = opts.secret_ttl
    SETTINGS.access_token_ttl = opts.access_token_ttl
    SETTINGS.rfc7592_errors = opts.rfc7592_errors
    SETTINGS.initial_access_token = opts.initial_access_token
    SETTINGS.fail_updates = opts.fail_updates

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    app = build_app()
    httpd = make_server(
        common.HOST, opts.port, Serialized(app), threaded=True, request_handler=PlainLogHandler
    )
    SETTINGS.issuer = f"http://{common.HOST}:{httpd.server_port}"
    # Fails loudly at start if the published metadata is ever malformed.
    server_metadata().validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])

    common.watch_stdin(stop)
    common.announce_ready(ready_out, SETTINGS.issuer)
    httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
