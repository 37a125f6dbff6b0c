#!/usr/bin/env bash
# Smoke test for server.mjs. Needs only node, npm, curl and jq (npm only when the
# dependencies are not installed yet: install.sh runs first). Every network call
# and every wait is bounded; the whole run takes about 10 s. Exits non-zero on the
# first failed check.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../smoke-lib.sh"
need_tools node npm curl jq
"$HERE/install.sh"
SERVER_CMD=(node "$HERE/server.mjs")

# ---------------------------------------------------------------------------
# Start the server (stopped by its pid at the end).

start_server main --port 0 --secret-ttl 3
BASE="${ISSUER%/}"

# ---------------------------------------------------------------------------
# Metadata

meta="$("${CURL[@]}" "$BASE/.well-known/oauth-authorization-server")"
expect_eq "$(jq -r .issuer <<<"$meta")" "$ISSUER" "metadata issuer is the ready line"
expect_eq "${ISSUER: -1}" "/" "issuer ends with a slash"
expect_eq "$(jq -c .token_endpoint_auth_methods_supported <<<"$meta")" '["client_secret_post","none"]' \
  "token endpoint auth methods"
expect_eq "$(jq -c .code_challenge_methods_supported <<<"$meta")" '["S256"]' "PKCE methods"
expect_eq "$(jq -r .registration_endpoint <<<"$meta")" "$BASE/register" "registration endpoint"
expect_eq "$(jq -r .token_endpoint <<<"$meta")" "$BASE/token" "token endpoint"

prm="$("${CURL[@]}" "$BASE/.well-known/oauth-protected-resource/mcp")"
expect_eq "$(jq -r .resource <<<"$prm")" "$BASE/mcp" "protected resource metadata: resource"
expect_eq "$(jq -c .authorization_servers <<<"$prm")" "[\"$ISSUER\"]" "protected resource metadata names the issuer"

# ---------------------------------------------------------------------------
# Registration of a confidential client (client_secret_post)

REDIRECT="http://127.0.0.1:9999/callback"
res="$(call -H 'content-type: application/json' "$BASE/register" -d "{
  \"redirect_uris\":[\"$REDIRECT\"],\"token_endpoint_auth_method\":\"client_secret_post\",
  \"grant_types\":[\"authorization_code\",\"refresh_token\"],\"client_name\":\"smoke\"}")"
expect_eq "$(status_of "$res")" 201 "registration: 201"
reg="$(body_of "$res")"
CID="$(jq -r .client_id <<<"$reg")"
SECRET="$(jq -r .client_secret <<<"$reg")"
EXPIRES="$(jq -r .client_secret_expires_at <<<"$reg")"
[ "$CID" != null ] && [ "$SECRET" != null ] || fail "registration answer: $reg"
now="$(date +%s)"
[ "$EXPIRES" -ge $((now + 2)) ] && [ "$EXPIRES" -le $((now + 4)) ] \
  || fail "client_secret_expires_at $EXPIRES is not about now+3 ($now)"
ok "registration: client_secret_expires_at = now+3"

res="$(call -X PUT -H 'content-type: application/json' "$BASE/register/$CID" -d '{}')"
expect_eq "$(status_of "$res") $(jq -r .error <<<"$(body_of "$res")")" "405 method_not_allowed" \
  "no RFC 7592: PUT /register/<id> is 405"

# ---------------------------------------------------------------------------
# Authorization (auto-approved) and the code exchange with PKCE

read -r VERIFIER CHALLENGE < <(node -e '
  const c = require("node:crypto");
  const v = c.randomBytes(32).toString("base64url");
  console.log(v, c.createHash("sha256").update(v).digest("base64url"));')
STATE="smoke-$RANDOM"
auth_url="$BASE/authorize?response_type=code&client_id=$CID&redirect_uri=$(jq -rn --arg v "$REDIRECT" '$v|@uri')"
auth_url+="&code_challenge=$CHALLENGE&code_challenge_method=S256&state=$STATE&scope=mcp:tools"
read -r code_status location < <("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}\n' "$auth_url")
expect_eq "$code_status" 302 "authorize: 302"
expect_eq "${location%%\?*}" "$REDIRECT" "authorize: redirects to the redirect_uri"
expect_eq "$(qparam "$location" state)" "$STATE" "authorize: state comes back"
CODE="$(qparam "$location" code)"
[ -n "$CODE" ] || fail "no code in $location"
ok "authorize: code issued"

token() { call "$BASE/token" "$@"; }

res="$(token -d grant_type=authorization_code -d "code=$CODE" -d code_verifier=not-the-verifier-not-the-verifier-00000 \
  -d "client_id=$CID" -d "client_secret=$SECRET" -d "redirect_uri=$REDIRECT")"
expect_eq "$(status_of "$res") $(jq -r .error <<<"$(body_of "$res")")" "400 invalid_grant" "wrong PKCE verifier: invalid_grant"

res="$(token -d grant_type=authorization_code -d "code=$CODE" -d "code_verifier=$VERIFIER" \
  -d "client_id=$CID" -d "client_secret=$SECRET" -d "redirect_uri=$REDIRECT")"
expect_eq "$(status_of "$res")" 200 "code exchange with PKCE: 200"
tokens="$(body_of "$res")"
ACCESS="$(jq -r .access_token <<<"$tokens")"
REFRESH1="$(jq -r .refresh_token <<<"$tokens")"
[ "$ACCESS" != null ] && [ "$REFRESH1" != null ] || fail "token answer: $tokens"
expect_eq "$(jq -r .expires_in <<<"$tokens")" 3600 "access token lifetime"
expect_eq "$(jq -r .scope <<<"$tokens")" "mcp:tools" "granted scope"

res="$(token -d grant_type=authorization_code -d "code=$CODE" -d "code_verifier=$VERIFIER" \
  -d "client_id=$CID" -d "client_secret=$SECRET")"
expect_eq "$(status_of "$res") $(jq -r .error <<<"$(body_of "$res")")" "400 invalid_grant" "code reuse: invalid_grant"

# ---------------------------------------------------------------------------
# Refresh with rotation

res="$(token -d grant_type=refresh_token -d "refresh_token=$REFRESH1" -d "client_id=$CID" -d "client_secret=$SECRET")"
expect_eq "$(status_of "$res")" 200 "refresh: 200"
REFRESH2="$(jq -r .refresh_token <<<"$(body_of "$res")")"
[ "$REFRESH2" != null ] || fail "refresh answer: $(body_of "$res")"
expect_ne "$REFRESH2" "$REFRESH1" "refresh token rotated"
res="$(token -d grant_type=refresh_token -d "refresh_token=$REFRESH1" -d "client_id=$CID" -d "client_secret=$SECRET")"
expect_eq "$(status_of "$res") $(jq -r .error <<<"$(body_of "$res")")" "400 invalid_grant" "old refresh token refused"

res="$(token -d grant_type=refresh_token -d "refresh_token=$REFRESH2" -d "client_id=$CID" -d "client_secret=wrong")"
expect_eq "$(status_of "$res") $(jq -r .error <<<"$(body_of "$res")")" "400 invalid_client" "wrong secret: 400 invalid_client"

# ---------------------------------------------------------------------------
# The MCP server

MCP_HEADERS=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smoke","version":"0"}}}'
# The answer comes as one server-sent event: keep its data line.
sse_data() { sed -n 's/^data: //p' "$WORK/body"; }

"${CURL[@]}" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "${MCP_HEADERS[@]}" "$BASE/mcp" -d "$INIT" >"$WORK/status" || true
expect_eq "$(cat "$WORK/status")" 401 "/mcp without a token: 401"
grep -qi "^www-authenticate: Bearer .*resource_metadata=\"$BASE/.well-known/oauth-protected-resource/mcp\"" "$WORK/headers" \
  || fail "WWW-Authenticate without resource_metadata: $(grep -i www-authenticate "$WORK/headers")"
ok "/mcp without a token: WWW-Authenticate names the resource metadata"

"${CURL[@]}" -o "$WORK/body" -w '%{http_code}' "${MCP_HEADERS[@]}" -H "authorization: Bearer $ACCESS" "$BASE/mcp" -d "$INIT" >"$WORK/status" || true
expect_eq "$(cat "$WORK/status")" 200 "/mcp initialize with the token: 200"
expect_eq "$(sse_data | jq -r .result.serverInfo.name)" tenure-test-mcp "initialize result"

"${CURL[@]}" -o "$WORK/body" -w '%{http_code}' "${MCP_HEADERS[@]}" -H "authorization: Bearer $ACCESS" \
  -H 'mcp-protocol-version: 2025-06-18' "$BASE/mcp" \
  -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}' >"$WORK/status" || true
expect_eq "$(cat "$WORK/status")" 200 "/mcp tools/call: 200"
expect_eq "$(sse_data | jq -r '.result.content[0].text')" "test-user (client $CID)" "whoami names the client"

# ---------------------------------------------------------------------------
# Counters

counts="$("${CURL[@]}" "$BASE/__admin/counts")"
expect_eq "$(jq -r .registrations <<<"$counts")" 1 "counts: registrations"
expect_eq "$(jq -r .updates <<<"$counts")" 1 "counts: updates (the refused PUT)"
expect_eq "$(jq -r .token_authorization_code <<<"$counts")" 3 "counts: token_authorization_code"
expect_eq "$(jq -r .token_refresh_token <<<"$counts")" 3 "counts: token_refresh_token"
expect_eq "$(jq -r .discovery <<<"$counts")" 2 "counts: discovery"
expect_eq "$(jq -r .mcp <<<"$counts")" 3 "counts: mcp"
expect_eq "$(jq -c '[.requests[] | select(.path == "/authorize")] | .[0]' <<<"$counts")" \
  '{"method":"GET","path":"/authorize","status":302}' "counts: requests listed without query"
"${CURL[@]}" -X POST "$BASE/__admin/reset-counts" >/dev/null
expect_eq "$("${CURL[@]}" "$BASE/__admin/counts" | jq -c '[.registrations, .mcp, (.requests | length)]')" '[0,0,0]' "reset-counts"

# ---------------------------------------------------------------------------
# The secret expires (the SDK refuses once now > client_secret_expires_at)

for _ in $(seq 1 80); do
  [ "$(date +%s)" -gt "$EXPIRES" ] && break
  sleep 0.1
done
[ "$(date +%s)" -gt "$EXPIRES" ] || fail "the clock did not pass $EXPIRES"
res="$(token -d grant_type=refresh_token -d "refresh_token=$REFRESH2" -d "client_id=$CID" -d "client_secret=$SECRET")"
expect_eq "$(status_of "$res") $(body_of "$res")" \
  '400 {"error":"invalid_client","error_description":"Client secret has expired"}' "expired secret: 400 invalid_client"

# ---------------------------------------------------------------------------
# Registration rate limit (on by default), and forget-clients as a restart

seen=""
for i in $(seq 2 25); do
  res="$(call -H 'content-type: application/json' "$BASE/register" -d "{\"redirect_uris\":[\"$REDIRECT\"]}")"
  if [ "$(status_of "$res")" != 201 ]; then seen="$i $res"; break; fi
done
expect_eq "$seen" "21 429 $(jq -c -n '{error:"too_many_requests",error_description:"You have exceeded the rate limit for client registration requests"}')" \
  "the 21st registration within the hour: 429 too_many_requests"

forgot="$("${CURL[@]}" -X POST "$BASE/__admin/forget-clients")"
expect_eq "$(jq -r .forgotten.clients <<<"$forgot")" 20 "forget-clients: forgot 20 clients"
res="$(token -d grant_type=refresh_token -d "refresh_token=$REFRESH2" -d "client_id=$CID" -d "client_secret=$SECRET")"
expect_eq "$(status_of "$res") $(jq -r .error_description <<<"$(body_of "$res")")" "400 Invalid client_id" \
  "after forget-clients: the client is unknown"
"${CURL[@]}" -o /dev/null -w '%{http_code}' "${MCP_HEADERS[@]}" -H "authorization: Bearer $ACCESS" "$BASE/mcp" -d "$INIT" >"$WORK/status" || true
expect_eq "$(cat "$WORK/status")" 401 "after forget-clients: the access token is unknown"
res="$(call -H 'content-type: application/json' "$BASE/register" -d "{\"redirect_uris\":[\"$REDIRECT\"]}")"
expect_eq "$(status_of "$res")" 201 "after forget-clients: the rate limit starts again"

# ---------------------------------------------------------------------------
# Stop by pid

stop_server "$SERVER_PID"
ok "server stopped on SIGTERM"

echo "all $PASSED checks passed"
