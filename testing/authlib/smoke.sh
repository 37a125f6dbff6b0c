#!/usr/bin/env bash
# Smoke test for server.py. Needs only python3, curl and jq (install.sh fetches
# the Python packages from PyPI the first time).
# Every network call and every wait is bounded; a run takes about 10 s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/../smoke-lib.sh"
need_tools python3 curl jq
bash "$HERE/install.sh"
PY="$HERE/.venv/bin/python"
SERVER_CMD=("$PY" "$HERE/server.py")

err_of() { jq -r '.error // "none"' <<<"${1#* }"; }
token_call() { call "$ISSUER/token" "$@"; }
json_call() { call -H 'content-type: application/json' "$@"; }
put_body() { # the client's metadata as RFC 7592 wants it back in a PUT
  jq -c 'del(.registration_access_token, .registration_client_uri, .client_secret_expires_at, .client_id_issued_at)' <<<"$1"
}

urldecode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$1"; }
new_verifier() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }
s256() {
  python3 -c 'import base64, hashlib, sys
print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$1"
}

REDIRECT="http://127.0.0.1:9999/callback"

# authorize CLIENT_ID SCOPE: one GET /authorize, which must answer 302 to the
# redirect_uri. Sets CODE, VERIFIER, LOCATION.
authorize() {
  local client="$1" scope="$2" state url res
  VERIFIER="$(new_verifier)"
  state="st-$RANDOM$RANDOM"
  url="$ISSUER/authorize?response_type=code&client_id=$(uri "$client")&redirect_uri=$(uri "$REDIRECT")"
  url+="&scope=$(uri "$scope")&state=$state&code_challenge_method=S256&code_challenge=$(s256 "$VERIFIER")"
  res="$("${CURL[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "$url")"
  [ "${res%% *}" == 302 ] || fail "authorize answered ${res%% *}"
  LOCATION="${res#* }"
  [[ "$LOCATION" == "$REDIRECT?"* ]] || fail "authorize redirected elsewhere: $LOCATION"
  [ "$(qparam "$LOCATION" state)" == "$state" ] || fail "state mismatch: $LOCATION"
  [ "$(urldecode "$(qparam "$LOCATION" iss)")" == "$ISSUER" ] || fail "iss mismatch: $LOCATION"
  CODE="$(qparam "$LOCATION" code)"
  [ -n "$CODE" ] || fail "no code in $LOCATION"
}

# ---------------------------------------------------------------------------
start_server main --port 0 --secret-ttl 3
MAIN_PID="$SERVER_PID"

meta="$("${CURL[@]}" "$ISSUER/.well-known/oauth-authorization-server")"
expect_eq "$(jq -r .issuer <<<"$meta")" "$ISSUER" "metadata: issuer without trailing slash"
expect_eq "$(jq -r .registration_endpoint <<<"$meta")" "$ISSUER/register" "metadata: registration_endpoint"
expect_eq "$(jq -c .code_challenge_methods_supported <<<"$meta")" '["S256"]' "metadata: code_challenge_methods_supported"
expect_eq "$(jq -c '.token_endpoint_auth_methods_supported | sort' <<<"$meta")" \
  '["client_secret_basic","client_secret_post","none"]' "metadata: token_endpoint_auth_methods_supported"
expect_eq "$(jq -c '.grant_types_supported | sort' <<<"$meta")" \
  '["authorization_code","client_credentials","refresh_token"]' "metadata: grant_types_supported"
expect_eq "$(jq -r .authorization_response_iss_parameter_supported <<<"$meta")" true \
  "metadata: authorization_response_iss_parameter_supported"

# --- confidential client: code + PKCE, refresh rotation -------------------
res="$(json_call "$ISSUER/register" -d "{\"redirect_uris\":[\"$REDIRECT\"],
  \"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"],
  \"token_endpoint_auth_method\":\"client_secret_basic\",\"client_name\":\"smoke\",\"scope\":\"read write\"}")"
expect_eq "$(status_of "$res")" 201 "registration: 201"
REG="$(body_of "$res")"
CID="$(jq -r .client_id <<<"$REG")"
SECRET1="$(jq -r .client_secret <<<"$REG")"
RAT1="$(jq -r .registration_access_token <<<"$REG")"
RCU="$(jq -r .registration_client_uri <<<"$REG")"
EXP1="$(jq -r .client_secret_expires_at <<<"$REG")"
[ "$SECRET1" != null ] && [ "$RAT1" != null ] || fail "registration: $REG"
expect_eq "$RCU" "$ISSUER/register/$CID" "registration: registration_client_uri"
now="$(date +%s)"
[ "$EXP1" -gt "$now" ] && [ "$EXP1" -le $((now + 4)) ] || fail "client_secret_expires_at $EXP1 is not about now+3"
ok "registration: client_secret_expires_at = now+3"

authorize "$CID" "read"
ok "authorize: 302 to the redirect_uri with code, state and iss"

exchange() { # exchange VERIFIER: code exchange with HTTP Basic
  token_call -u "$CID:$SECRET1" -d grant_type=authorization_code -d code="$CODE" \
    --data-urlencode redirect_uri="$REDIRECT" -d code_verifier="$1"
}
res="$(exchange "$(new_verifier)")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 invalid_grant" "wrong code_verifier: 400 invalid_grant"
res="$(exchange "$VERIFIER")"
expect_eq "$(status_of "$res")" 200 "code exchange with PKCE and Basic (after a failed one)"
TOK="$(body_of "$res")"
expect_eq "$(jq -r '[.token_type, .scope, .expires_in] | join(" ")' <<<"$TOK")" "Bearer read 3600" "token: Bearer, scope read, 3600 s"
RT1="$(jq -r .refresh_token <<<"$TOK")"
[ "$RT1" != null ] || fail "no refresh_token: $TOK"
res="$(exchange "$VERIFIER")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 invalid_grant" "reused code: 400 invalid_grant"

res="$(token_call -u "$CID:$SECRET1" -d grant_type=refresh_token -d refresh_token="$RT1")"
expect_eq "$(status_of "$res")" 200 "refresh"
RT2="$(jq -r .refresh_token <<<"$(body_of "$res")")"
expect_ne "$RT2" "$RT1" "refresh rotated the refresh token"
res="$(token_call -u "$CID:$SECRET1" -d grant_type=refresh_token -d refresh_token="$RT1")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 invalid_grant" "old refresh token: 400 invalid_grant"

# --- RFC 7592 renewal -----------------------------------------------------
res="$(json_call -X PUT -H "authorization: Bearer $RAT1" "$RCU" -d "$(put_body "$REG")")"
expect_eq "$(status_of "$res")" 200 "PUT: 200"
UPD="$(body_of "$res")"
SECRET2="$(jq -r .client_secret <<<"$UPD")"
RAT2="$(jq -r .registration_access_token <<<"$UPD")"
EXP2="$(jq -r .client_secret_expires_at <<<"$UPD")"
expect_ne "$SECRET2" "$SECRET1" "PUT issued a new client_secret"
expect_ne "$RAT2" "$RAT1" "PUT rotated the registration access token"
expect_eq "$(jq -r .registration_client_uri <<<"$UPD")" "$RCU" "PUT: same registration_client_uri"
[ "$EXP2" -ge "$EXP1" ] || fail "client_secret_expires_at did not move: $EXP1 -> $EXP2"
ok "PUT: client_secret_expires_at moved on"

res="$(json_call -X PUT -H "authorization: Bearer $RAT1" "$RCU" -d "$(put_body "$UPD")")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 access_denied" "old registration access token on PUT: 400 access_denied"
res="$(token_call -u "$CID:$SECRET1" -d grant_type=refresh_token -d refresh_token="$RT2")"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_client" "old secret after PUT: 401 invalid_client"
res="$(token_call -u "$CID:$SECRET2" -d grant_type=refresh_token -d refresh_token="$RT2")"
expect_eq "$(status_of "$res")" 200 "new secret works"
RT3="$(jq -r .refresh_token <<<"$(body_of "$res")")"

"${CURL[@]}" -X POST "$ISSUER/__admin/fail-updates?on=1" >/dev/null
res="$(json_call -X PUT -H "authorization: Bearer $RAT2" "$RCU" -d "$(put_body "$UPD")")"
expect_eq "$(status_of "$res") $(err_of "$res")" "500 server_error" "fail-updates on: PUT gives 500 server_error"
"${CURL[@]}" -X POST "$ISSUER/__admin/fail-updates?on=0" >/dev/null
res="$(call -H "authorization: Bearer $RAT2" "$RCU")"
expect_eq "$(status_of "$res") $(jq -r .client_secret <<<"$(body_of "$res")")" "200 $SECRET2" \
  "failed PUT left the secret and the registration access token alone"

# --- client credentials -----------------------------------------------------
res="$(json_call "$ISSUER/register" -d '{"grant_types":["client_credentials"],"response_types":[],
  "token_endpoint_auth_method":"client_secret_basic","scope":"read"}')"
expect_eq "$(status_of "$res")" 201 "client_credentials client registered"
CC="$(body_of "$res")"
CC_ID="$(jq -r .client_id <<<"$CC")"
CC_SECRET="$(jq -r .client_secret <<<"$CC")"
res="$(token_call -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials -d scope=read)"
expect_eq "$(status_of "$res")" 200 "client_credentials token"
expect_eq "$(jq -r '[.scope, (has("refresh_token") | tostring)] | join(" ")' <<<"$(body_of "$res")")" \
  "read false" "client_credentials: scope read, no refresh token"

# --- expiry -----------------------------------------------------------------
for _ in $(seq 1 100); do [ "$(date +%s)" -gt "$EXP2" ] && break; sleep 0.1; done
[ "$(date +%s)" -gt "$EXP2" ] || fail "clock did not pass $EXP2"
res="$(token_call -u "$CID:$SECRET2" -d grant_type=refresh_token -d refresh_token="$RT3")"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_client" "expired secret: 401 invalid_client"
res="$(token_call -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials)"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_client" "expired client_credentials secret: 401 invalid_client"

# an expired secret is renewed by a PUT (which may repeat the expired secret)
res="$(json_call -X PUT -H "authorization: Bearer $RAT2" "$RCU" -d "$(put_body "$UPD")")"
expect_eq "$(status_of "$res")" 200 "PUT repeating the expired secret renews it"
SECRET3="$(jq -r .client_secret <<<"$(body_of "$res")")"
RAT3="$(jq -r .registration_access_token <<<"$(body_of "$res")")"
res="$(token_call -u "$CID:$SECRET3" -d grant_type=refresh_token -d refresh_token="$RT3")"
expect_eq "$(status_of "$res")" 200 "renewed secret works, and the refresh token outlived the expired secret"
RT4="$(jq -r .refresh_token <<<"$(body_of "$res")")"

# --- revocation -------------------------------------------------------------
res="$(call -u "$CID:$SECRET3" "$ISSUER/revoke" -d token="$RT4" -d token_type_hint=refresh_token)"
expect_eq "$(status_of "$res")" 200 "revocation: 200"
res="$(token_call -u "$CID:$SECRET3" -d grant_type=refresh_token -d refresh_token="$RT4")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 invalid_grant" "revoked refresh token: 400 invalid_grant"

# --- DELETE and forget-clients -----------------------------------------------
res="$(call -X DELETE -H "authorization: Bearer $(jq -r .registration_access_token <<<"$CC")" \
  "$(jq -r .registration_client_uri <<<"$CC")")"
expect_eq "$(status_of "$res")" 204 "RFC 7592 DELETE: 204"
res="$(token_call -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials)"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_client" "deleted client: 401 invalid_client"

"${CURL[@]}" -X POST "$ISSUER/__admin/forget-clients" >/dev/null
res="$(token_call -u "$CID:$SECRET3" -d grant_type=refresh_token -d refresh_token="$RT4")"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_client" "forgotten client at /token: 401 invalid_client"
res="$(call -X DELETE -H "authorization: Bearer $RAT3" "$RCU")"
expect_eq "$(status_of "$res") $(err_of "$res")" "400 access_denied" "forgotten client, DELETE: Authlib's 400 access_denied"

# --- counts -------------------------------------------------------------------
counts="$("${CURL[@]}" "$ISSUER/__admin/counts")"
expect_eq "$(jq -c '[.registrations, .updates, .reads, .deletes, .discovery]' <<<"$counts")" \
  '[2,4,1,2,1]' "counts: registrations, updates, reads, deletes, discovery"
expect_eq "$(jq -c '[.token_authorization_code, .token_refresh_token, .token_client_credentials, .token_other]' <<<"$counts")" \
  '[3,8,3,0]' "counts: token requests by grant type"
expect_eq "$(jq -c '.requests[0]' <<<"$counts")" \
  '{"method":"GET","path":"/.well-known/oauth-authorization-server","status":200}' "counts: requests list"
expect_eq "$(jq '[.requests[] | select(.path | startswith("/__admin/"))] | length' <<<"$counts")" 0 \
  "counts: admin requests are not listed"
expect_eq "$(jq '[.requests[] | select(.path == "/authorize")][0].status' <<<"$counts")" 302 \
  "counts: path without query"
echo "---- counts (main):"
jq -c 'del(.requests)' <<<"$counts"
"${CURL[@]}" -X POST "$ISSUER/__admin/reset-counts" >/dev/null
expect_eq "$("${CURL[@]}" "$ISSUER/__admin/counts" | jq -c '[.registrations, .requests]')" '[0,[]]' "reset-counts"

stop_server "$MAIN_PID"
ok "server stopped by its pid (SIGTERM)"

# ---------------------------------------------------------------------------
# Second server: RFC 7592's own errors; it is then stopped by closing its stdin.
start_server strict --port 0 --rfc7592-errors
res="$(json_call "$ISSUER/register" -d '{"grant_types":["client_credentials"],"response_types":[],
  "token_endpoint_auth_method":"client_secret_post"}')"
REG="$(body_of "$res")"
RAT1="$(jq -r .registration_access_token <<<"$REG")"
RCU="$(jq -r .registration_client_uri <<<"$REG")"
expect_eq "$(jq -r .client_secret_expires_at <<<"$REG")" 0 "no --secret-ttl: client_secret_expires_at 0"
res="$(json_call -X PUT -H "authorization: Bearer $RAT1" "$RCU" -d "$(put_body "$REG")")"
UPD="$(body_of "$res")"
expect_eq "$(jq -r .client_secret <<<"$UPD")" "$(jq -r .client_secret <<<"$REG")" \
  "no --secret-ttl: PUT keeps the secret"
expect_ne "$(jq -r .registration_access_token <<<"$UPD")" "$RAT1" "no --secret-ttl: PUT still rotates the registration access token"
res="$(json_call -X PUT -H "authorization: Bearer $RAT1" "$RCU" -d "$(put_body "$UPD")")"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_token" "--rfc7592-errors: old registration access token, 401 invalid_token"
"${CURL[@]}" -X POST "$ISSUER/__admin/forget-clients" >/dev/null
res="$(call -X DELETE -H "authorization: Bearer $(jq -r .registration_access_token <<<"$UPD")" "$RCU")"
expect_eq "$(status_of "$res") $(err_of "$res")" "401 invalid_token" "--rfc7592-errors: forgotten client, DELETE 401 invalid_token"

exec {SERVER_STDIN_FD}>&-
wait_gone "$SERVER_PID" || fail "server did not stop when its stdin closed"
ok "server stopped when its stdin closed"

set +e
"$PY" "$HERE/server.py" --no-such-flag </dev/null >/dev/null 2>"$WORK/usage.err"
rc=$?
set -e
expect_eq "$rc" 2 "unknown flag: exit 2"
grep -q '^usage:' "$WORK/usage.err" || fail "unknown flag: no usage on stderr"
ok "unknown flag: usage on stderr"

echo "PASS ($PASSED checks)"
