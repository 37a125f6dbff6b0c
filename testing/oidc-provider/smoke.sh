#!/usr/bin/env bash
# Smoke test for server.mjs. Needs node, curl, jq and openssl.
# Every network call and every wait is bounded; the whole run takes ~15 s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../smoke-lib.sh"
need_tools node curl jq openssl
[ -d "$HERE/node_modules/oidc-provider" ] || { echo "run 'npm ci' in $HERE first" >&2; exit 2; }
SERVER_CMD=(node "$HERE/server.mjs")

# token_call ARGS... : POST /token, prints "<status> <body>"
token_call() { call "$ISSUER/token" "$@"; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# ---------------------------------------------------------------------------
start_server main --port 0 --secret-ttl 5

disc="$("${CURL[@]}" "$ISSUER/.well-known/oauth-authorization-server")"
expect_eq "$(jq -r .issuer <<<"$disc")" "$ISSUER" "discovery issuer"
expect_eq "$(jq -r .registration_endpoint <<<"$disc")" "$ISSUER/reg" "discovery registration_endpoint"

# --- confidential client_credentials client, expiring and rotating secret ---
reg="$("${CURL[@]}" -H 'content-type: application/json' "$ISSUER/reg" \
  -d '{"grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"client_secret_basic","scope":"read"}')"
CID="$(jq -r .client_id <<<"$reg")"
SECRET1="$(jq -r .client_secret <<<"$reg")"
RAT1="$(jq -r .registration_access_token <<<"$reg")"
RCU="$(jq -r .registration_client_uri <<<"$reg")"
EXP1="$(jq -r .client_secret_expires_at <<<"$reg")"
[ "$CID" != null ] && [ "$SECRET1" != null ] || fail "registration: $reg"
now="$(date +%s)"
[ "$EXP1" -gt "$now" ] && [ "$EXP1" -le $((now + 6)) ] || fail "client_secret_expires_at $EXP1 not ~now+5"
ok "registration: client_secret_expires_at = now+5"

res="$(token_call -u "$CID:$SECRET1" -d grant_type=client_credentials -d scope=read \
  --data-urlencode resource=http://127.0.0.1:9/mcp)"
expect_eq "${res%% *}" 200 "client_credentials with resource"
expect_eq "$(jq -r .scope <<<"${res#* }")" read "client_credentials scope"

put_body="$(jq 'del(.registration_access_token, .registration_client_uri, .client_secret_expires_at, .client_id_issued_at)' <<<"$reg")"
upd="$("${CURL[@]}" -X PUT -H "authorization: Bearer $RAT1" -H 'content-type: application/json' "$RCU" -d "$put_body")"
SECRET2="$(jq -r .client_secret <<<"$upd")"
RAT2="$(jq -r .registration_access_token <<<"$upd")"
[ "$SECRET2" != null ] || fail "update: $upd"
expect_ne "$SECRET2" "$SECRET1" "PUT rotated client_secret"
expect_ne "$RAT2" "$RAT1" "PUT rotated registration_access_token"
[ "$(jq -r .client_secret_expires_at <<<"$upd")" -ge "$EXP1" ] || fail "expiry did not move"
ok "PUT reset client_secret_expires_at"

status="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "authorization: Bearer $RAT1" "$RCU")"
expect_eq "$status" 401 "old registration access token rejected"
read_back="$("${CURL[@]}" -H "authorization: Bearer $RAT2" "$RCU")"
expect_eq "$(jq -r .client_secret <<<"$read_back")" "$SECRET2" "GET shows the rotated secret"

res="$(token_call -u "$CID:$SECRET1" -d grant_type=client_credentials -d scope=read)"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_client "old secret after PUT: invalid_client (HTTP ${res%% *})"
res="$(token_call -u "$CID:$SECRET2" -d grant_type=client_credentials -d scope=read)"
expect_eq "${res%% *}" 200 "new secret works"

"${CURL[@]}" -X POST "$ISSUER/__admin/fail-updates?on=1" >/dev/null
upd_fail="$("${CURL[@]}" -o "$WORK/body" -w '%{http_code}' -X PUT -H "authorization: Bearer $RAT2" \
  -H 'content-type: application/json' "$RCU" -d "$put_body")"
expect_eq "$upd_fail $(jq -r .error "$WORK/body")" "500 server_error" "fail-updates on: PUT gives 500 server_error"
"${CURL[@]}" -X POST "$ISSUER/__admin/fail-updates?on=0" >/dev/null
res="$(token_call -u "$CID:$SECRET2" -d grant_type=client_credentials)"
expect_eq "${res%% *}" 200 "failed PUT left the secret alone"

# --- a delayed PUT whose client gives up is still carried out: a lost answer ---
lost="$("${CURL[@]}" -H 'content-type: application/json' "$ISSUER/reg" \
  -d '{"grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"client_secret_basic","scope":"read"}')"
"${CURL[@]}" -X POST "$ISSUER/__admin/delay-updates?ms=1000" >/dev/null
curl -sS --max-time 0.3 -o /dev/null -X PUT -H "authorization: Bearer $(jq -r .registration_access_token <<<"$lost")" \
  -H 'content-type: application/json' "$(jq -r .registration_client_uri <<<"$lost")" \
  -d "$(jq 'del(.registration_access_token, .registration_client_uri, .client_secret_expires_at, .client_id_issued_at)' <<<"$lost")" \
  2>/dev/null || true
waiting="$("${CURL[@]}" "$ISSUER/__admin/counts" | jq '[.requests[] | select(.method == "PUT" and (has("status") | not))] | length')"
expect_eq "$waiting" 1 "delay-updates: the waiting PUT is listed without a status"
sleep 1.2
"${CURL[@]}" -X POST "$ISSUER/__admin/delay-updates?ms=0" >/dev/null
res="$(token_call -u "$(jq -r .client_id <<<"$lost"):$(jq -r .client_secret <<<"$lost")" -d grant_type=client_credentials)"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_client "delay-updates: the PUT of a client that went away still rotated the secret"

# --- headless authorization code + PKCE for a native public client ---
nat="$("${CURL[@]}" -H 'content-type: application/json' "$ISSUER/reg" -d '{
  "application_type":"native","redirect_uris":["http://127.0.0.1/callback"],
  "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
  "token_endpoint_auth_method":"none","scope":"openid offline_access read"}')"
NCID="$(jq -r .client_id <<<"$nat")"
expect_eq "$(jq -r '.client_secret // "none"' <<<"$nat")" none "public client has no secret"
expect_eq "$(jq -r '.client_secret_expires_at // "none"' <<<"$nat")" none "public client has no secret expiry"

CB_PORT=45$((RANDOM % 900 + 100))
REDIRECT="http://127.0.0.1:$CB_PORT/callback"
RESOURCE="http://127.0.0.1:9/mcp"

# login CLIENT_ID SCOPE [RESOURCE]: headless authorization request, followed one
# hop at a time (the callback port has no listener). Sets CODE, VERIFIER, HOPS.
login() {
  local client="$1" scope="$2" resource="${3:-}" state url next
  VERIFIER="$(openssl rand -hex 32)"
  state="$(openssl rand -hex 8)"
  url="$ISSUER/auth?response_type=code&client_id=$(uri "$client")&redirect_uri=$(uri "$REDIRECT")"
  url+="&scope=$(uri "$scope")&state=$state&code_challenge_method=S256"
  url+="&code_challenge=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | b64url)"
  [ -n "$resource" ] && url+="&resource=$(uri "$resource")"
  HOPS=0
  while [[ "$url" != "$REDIRECT"* ]]; do
    HOPS=$((HOPS + 1)); [ "$HOPS" -le 10 ] || fail "too many redirects"
    next="$("${CURL[@]}" -o "$WORK/body" -w '%{http_code} %{redirect_url}' "$url")"
    [[ "${next%% *}" == 30? ]] || fail "hop $HOPS ($url) answered ${next%% *}: $(head -c 300 "$WORK/body")"
    url="${next#* }"
  done
  [ "$(qparam "$url" state)" == "$state" ] || fail "callback state mismatch: $url"
  [ "$(qparam "$url" iss | sed 's/%3A/:/g; s/%2F/\//g')" == "$ISSUER" ] || fail "callback iss mismatch: $url"
  CODE="$(qparam "$url" code)"
  [ -n "$CODE" ] || fail "no code in $url"
}
exchange() { # exchange CLIENT_ID VERIFIER
  token_call -d grant_type=authorization_code --data-urlencode client_id="$1" -d code="$CODE" \
    --data-urlencode redirect_uri="$REDIRECT" -d code_verifier="$2"
}

login "$NCID" "openid offline_access read" "$RESOURCE"
ok "headless login: $HOPS hops without cookies, callback has code, state and iss"
res="$(exchange "$NCID" "wrong-$VERIFIER")"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_grant "wrong verifier: invalid_grant (HTTP ${res%% *})"
res="$(exchange "$NCID" "$VERIFIER")"
expect_eq "${res%% *}" 200 "code exchange (after a failed one)"
tok="${res#* }"
RT1="$(jq -r .refresh_token <<<"$tok")"
[ "$RT1" != null ] || fail "no refresh_token: $tok"
expect_eq "$(jq -r .scope <<<"$tok")" read "code exchange: token scope for the resource"
expect_eq "$(jq -r 'has("id_token")' <<<"$tok")" true "code exchange: id_token present"

res="$(token_call -d grant_type=refresh_token -d client_id="$NCID" -d refresh_token="$RT1")"
expect_eq "${res%% *}" 200 "refresh"
RT2="$(jq -r .refresh_token <<<"${res#* }")"
expect_ne "$RT2" "$RT1" "refresh rotated the refresh token"
expect_eq "$(jq -r .scope <<<"${res#* }")" read "refreshed token keeps the resource scope"
res="$(token_call -d grant_type=refresh_token -d client_id="$NCID" -d refresh_token="$RT1")"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_grant "old refresh token: invalid_grant (HTTP ${res%% *})"
res="$(token_call -d grant_type=refresh_token -d client_id="$NCID" -d refresh_token="$RT2")"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_grant "reusing the old one revoked the grant: new refresh token dead too"

login "$NCID" "read"
res="$(exchange "$NCID" "$VERIFIER")"
expect_eq "${res%% *}" 200 "second login without resource"
expect_eq "$(jq -r .scope <<<"${res#* }")" read "no resource: token still carries scope read"
RT3="$(jq -r .refresh_token <<<"${res#* }")"
res="$(exchange "$NCID" "$VERIFIER")"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_grant "reused code: invalid_grant (HTTP ${res%% *})"
res="$(token_call -d grant_type=refresh_token -d client_id="$NCID" -d refresh_token="$RT3")"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_grant "reusing the code revoked the grant: its refresh token dead too"

# --- expired secret (TTL 5 s, issued at the PUT above) ---
EXP2="$(jq -r .client_secret_expires_at <<<"$upd")"
while [ "$(date +%s)" -le "$EXP2" ]; do sleep 0.5; done
res="$(token_call -u "$CID:$SECRET2" -d grant_type=client_credentials)"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_client "expired secret: invalid_client (HTTP ${res%% *})"

status="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X DELETE -H "authorization: Bearer $RAT2" "$RCU")"
expect_eq "$status" 204 "RFC 7592 DELETE"
res="$(token_call -u "$CID:$SECRET2" -d grant_type=client_credentials)"
expect_eq "$(jq -r .error <<<"${res#* }")" invalid_client "deleted client: invalid_client (HTTP ${res%% *})"

echo "---- counts (main):"
"${CURL[@]}" "$ISSUER/__admin/counts" | jq -c 'del(.requests)'
"${CURL[@]}" "$ISSUER/__admin/counts" | jq -r '.requests[] | "  \(.method) \(.path) \(.status)"'
"${CURL[@]}" -X POST "$ISSUER/__admin/reset-counts" >/dev/null
expect_eq "$("${CURL[@]}" "$ISSUER/__admin/counts" | jq -c '[.registrations, .requests]')" '[0,[]]' "reset-counts"

# ---------------------------------------------------------------------------
# Second server: initial access token + client ID metadata document.
start_server cimd --port 0 --initial-access-token s3cret --cimd
disc="$("${CURL[@]}" "$ISSUER/.well-known/openid-configuration")"
expect_eq "$(jq -r .client_id_metadata_document_supported <<<"$disc")" true "discovery: CIMD supported"

body='{"grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"client_secret_basic"}'
status="$("${CURL[@]}" -o "$WORK/body" -w '%{http_code}' -H 'content-type: application/json' "$ISSUER/reg" -d "$body")"
expect_eq "$status $(jq -r .error "$WORK/body")" "401 invalid_token" "registration without initial access token"
status="$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H 'authorization: Bearer s3cret' -H 'content-type: application/json' "$ISSUER/reg" -d "$body")"
expect_eq "$status" 201 "registration with initial access token"

# serve the metadata document on plain HTTP; its client_id is the https form
DOC_PORT_FILE="$WORK/doc.port"
node -e '
  const http = require("node:http");
  const s = http.createServer((req, res) => {
    const id = `https://127.0.0.1:${s.address().port}/client.json`;
    if (req.url !== "/client.json") { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ client_id: id, client_name: "smoke", application_type: "native",
      redirect_uris: ["http://127.0.0.1/callback"], grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"], token_endpoint_auth_method: "none" }));
  });
  s.listen(0, "127.0.0.1", () => require("node:fs").writeFileSync(process.argv[1], String(s.address().port)));
  process.stdin.on("end", () => process.exit(0)); process.stdin.resume();
' "$DOC_PORT_FILE" <"$WORK/cimd.stdin" &
PIDS+=("$!")
for i in $(seq 1 50); do [ -s "$DOC_PORT_FILE" ] && break; sleep 0.1; done
DOC_ID="https://127.0.0.1:$(cat "$DOC_PORT_FILE")/client.json"
login "$DOC_ID" "openid"
res="$(exchange "$DOC_ID" "$VERIFIER")"
expect_eq "${res%% *}" 200 "CIMD client: login and code exchange"

echo "---- counts (cimd):"
"${CURL[@]}" "$ISSUER/__admin/counts" | jq -c 'del(.requests)'

echo "PASS ($PASSED checks)"
