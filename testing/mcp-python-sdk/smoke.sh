#!/usr/bin/env bash
# Smoke test for server.py. Needs python3 (with venv), curl and jq; PyPI the first time,
# when install.sh fills .venv. Every network call and every wait is bounded; after the
# install the run takes about 10 s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../smoke-lib.sh"
need_tools python3 curl jq
bash "$HERE/install.sh"
SERVER_CMD=("$HERE/.venv/bin/python" "$HERE/server.py")
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# ---------------------------------------------------------------------------
# Start. This server is given 15 s, not 10, to say ready.
READY_SECONDS=15
start_server main --port 0 --secret-ttl 3
BASE="${ISSUER%/}"

# ---------------------------------------------------------------------------
# Metadata
meta="$("${CURL[@]}" "$BASE/.well-known/oauth-authorization-server")"
expect_eq "$(jq -r .issuer <<<"$meta")" "$ISSUER" "metadata issuer is the ready line's"
expect_eq "$(jq -r .token_endpoint <<<"$meta")" "$BASE/token" "metadata token_endpoint"
expect_eq "$(jq -r .registration_endpoint <<<"$meta")" "$BASE/register" "metadata registration_endpoint"
expect_eq "$(jq -c .code_challenge_methods_supported <<<"$meta")" '["S256"]' "metadata PKCE methods"
prm="$("${CURL[@]}" "$BASE/.well-known/oauth-protected-resource/mcp")"
expect_eq "$(jq -r .resource <<<"$prm")" "$BASE/mcp" "protected resource metadata: resource"
expect_eq "$(jq -r '.authorization_servers[0]' <<<"$prm")" "$ISSUER" "protected resource metadata names the issuer"

# ---------------------------------------------------------------------------
# A confidential client (client_secret_post) whose secret lives 3 s
REDIRECT="http://127.0.0.1:9999/callback"
reg="$("${CURL[@]}" -H 'content-type: application/json' "$BASE/register" -d "{
  \"redirect_uris\":[\"$REDIRECT\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],
  \"token_endpoint_auth_method\":\"client_secret_post\",\"scope\":\"read write\",\"client_name\":\"smoke\"}")"
CID="$(jq -r .client_id <<<"$reg")"
SECRET="$(jq -r .client_secret <<<"$reg")"
EXPIRES="$(jq -r .client_secret_expires_at <<<"$reg")"
ISSUED="$(jq -r .client_id_issued_at <<<"$reg")"
[ "$CID" != null ] && [ "$SECRET" != null ] || fail "registration: $reg"
expect_eq "$((EXPIRES - ISSUED))" 3 "registration: client_secret_expires_at = issued + 3"

# Authorization: approved at once, 302 to the redirect URI with code and state
VERIFIER="$(head -c 32 /dev/urandom | b64url)"
CHALLENGE="$(printf %s "$VERIFIER" | python3 -c 'import sys,hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode().rstrip("="))')"
auth="$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' -G "$BASE/authorize" \
  --data-urlencode response_type=code --data-urlencode "client_id=$CID" \
  --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_challenge=$CHALLENGE" \
  --data-urlencode code_challenge_method=S256 --data-urlencode state=smoke-state \
  --data-urlencode "scope=read write" --data-urlencode "resource=$BASE/mcp")"
location="${auth#* }"
expect_eq "${auth%% *}" 302 "authorize answers 302"
expect_eq "${location%%\?*}" "$REDIRECT" "authorize redirects to the registered redirect URI"
CODE="$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"$location")"
STATE="$(sed -n 's/.*[?&]state=\([^&]*\).*/\1/p' <<<"$location")"
[ -n "$CODE" ] || fail "no code in $location"
expect_eq "$STATE" smoke-state "authorize returns the state"

# Code exchange with PKCE
res="$(call "$BASE/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *}" 200 "code exchange"
ACCESS="$(jq -r .access_token <<<"${res#* }")"
REFRESH1="$(jq -r .refresh_token <<<"${res#* }")"
expect_eq "$(jq -r .scope <<<"${res#* }")" "read write" "code exchange: scope"
[ "$REFRESH1" != null ] || fail "no refresh token: $res"

res="$(call "$BASE/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *} $(jq -r .error <<<"${res#* }")" "400 invalid_grant" "code reuse refused"

# Refresh with rotation
res="$(call "$BASE/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH1" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *}" 200 "refresh"
REFRESH2="$(jq -r .refresh_token <<<"${res#* }")"
expect_ne "$REFRESH2" "$REFRESH1" "refresh rotated the refresh token"
res="$(call "$BASE/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH1" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *} $(jq -r .error <<<"${res#* }")" "400 invalid_grant" "old refresh token refused"

# ---------------------------------------------------------------------------
# The MCP server at /mcp
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smoke","version":"1"}}}'
MCP_HEADERS=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-06-18')
status="$("${CURL[@]}" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X POST "$BASE/mcp" "${MCP_HEADERS[@]}" -d "$INIT")"
expect_eq "$status" 401 "/mcp without a token: 401"
grep -qi "^www-authenticate: Bearer .*resource_metadata=\"$BASE/.well-known/oauth-protected-resource/mcp\"" "$WORK/headers" \
  || fail "/mcp 401 without resource_metadata: $(cat "$WORK/headers")"
ok "/mcp 401 names the resource metadata"
status="$("${CURL[@]}" -o "$WORK/body" -w '%{http_code}' -X POST "$BASE/mcp" "${MCP_HEADERS[@]}" \
  -H "authorization: Bearer $ACCESS" -d "$INIT")"
expect_eq "$status" 200 "/mcp initialize with the token: 200"
served="$(sed -n 's/^data: //p' "$WORK/body" | jq -r '.result.serverInfo.name')"
expect_eq "$served" tenure-test-mcp "initialize result names the server"

# ---------------------------------------------------------------------------
# Counts
counts="$("${CURL[@]}" "$BASE/__admin/counts")"
expect_eq "$(jq -c '[.registrations, .token_authorization_code, .token_refresh_token, .discovery, .mcp]' <<<"$counts")" \
  '[1,2,2,2,2]' "counts: registrations, code and refresh grants, discovery, mcp"
expect_eq "$(jq -c '.requests[-1]' <<<"$counts")" '{"method":"POST","path":"/mcp","status":200}' "counts: last request listed"

# ---------------------------------------------------------------------------
# The secret expires: the SDK refuses it once the clock has passed client_secret_expires_at.
for _ in $(seq 1 50); do
  [ "$(date +%s)" -gt "$EXPIRES" ] && break
  sleep 0.2
done
[ "$(date +%s)" -gt "$EXPIRES" ] || fail "clock did not pass $EXPIRES"
res="$(call "$BASE/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH2" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *} $(jq -r .error <<<"${res#* }")" "401 invalid_client" "expired secret: invalid_client"
expect_eq "$(jq -r .error_description <<<"${res#* }")" "Client secret has expired" "expired secret: description"

# A forgotten client is unknown, as after a restart.
"${CURL[@]}" -X POST "$BASE/__admin/forget-clients" >/dev/null
res="$(call "$BASE/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH2" \
  --data-urlencode "client_id=$CID" --data-urlencode "client_secret=$SECRET")"
expect_eq "${res%% *} $(jq -r .error_description <<<"${res#* }")" "401 Invalid client_id" "forget-clients: client unknown"

# ---------------------------------------------------------------------------
# Stop by pid: SIGTERM ends it with status 0 within a few seconds.
stop_server "$SERVER_PID"
expect_eq "$SERVER_RC" 0 "server stopped on SIGTERM with status 0"

echo "PASS ($PASSED checks)"
