#!/usr/bin/env bash
# Runs the MCP conformance suite (@modelcontextprotocol/conformance) against Tenure's example
# MCP client, examples/mcp-conformance-client.
#
#   testing/mcp-conformance/run.sh [--suite NAME]... [--expected-failures FILE] [--no-build]
#
# Suites: auth, backcompat, draft (all three by default), from the release pinned in
# package.json; 2026-07-28, the auth scenarios of the suite's frozen 2026-07-28 requirements
# run at that revision's wire, from the prerelease pinned in 2026-07-28/package.json. The
# extension scenarios Tenure implements (client credentials, jwt-bearer, DPoP) are scored too, in `auth` and
# in `2026-07-28`, although the suite's own requirements do not score them. Every
# scenario runs on its own, inside a network namespace that has only loopback (the suite's
# servers listen on every interface), with the client's exit status counted and a time bound
# per scenario. Prints one line per scenario and a summary per suite; exits non-zero when a
# scenario fails that the baseline does not list, or when the baseline lists a scenario that
# now passes. The baseline is a YAML file in the suite's own format (`client:` and a list of
# scenario names) and applies to every suite of the run; see README.md for what is in it and
# why. The client is the debug build in Cargo's target directory (CARGO_TARGET_DIR honoured).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
results="$here/results"
# The suite gives the client 30 s; a scenario as a whole gets this long.
scenario_limit=90

suites=()
baseline=""
build=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suites+=("${2:?--suite needs a name: auth, backcompat, draft or 2026-07-28}"); shift 2 ;;
    --expected-failures) baseline="${2:?--expected-failures needs a file}"; shift 2 ;;
    --no-build) build=no; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#suites[@]} -gt 0 ] || suites=(auth backcompat draft)
# The folder whose package.json pins the suite's version for each suite.
packages_of() {
  case "$1" in
    auth|backcompat|draft) echo "$here" ;;
    2026-07-28) echo "$here/2026-07-28" ;;
    *) return 1 ;;
  esac
}
for suite in "${suites[@]}"; do
  packages_of "$suite" >/dev/null \
    || { echo "run.sh: unknown suite '$suite'; choose auth, backcompat, draft or 2026-07-28" >&2; exit 2; }
done
if [ -n "$baseline" ]; then
  baseline=$(cd "$(dirname "$baseline")" && pwd)/$(basename "$baseline")
  [ -f "$baseline" ] || { echo "run.sh: no baseline file $baseline" >&2; exit 2; }
fi

if [ -z "${TENURE_CONFORMANCE_NETNS:-}" ]; then
  # Outside the namespace: everything that needs the network or the build happens here.
  for suite in "${suites[@]}"; do
    packages=$(packages_of "$suite")
    if [ ! -x "$packages/node_modules/.bin/conformance" ] \
      || [ "$packages/package-lock.json" -nt "$packages/node_modules" ]; then
      (cd "$packages" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
  if [ "$build" = yes ]; then
    (cd "$root" && cargo build --locked --quiet -p mcp-conformance-client)
  fi
  # Cargo's own answer for where it builds, so CARGO_TARGET_DIR (or a build.target-dir
  # setting) is honoured.
  target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [ -n "$target_dir" ] || { echo "run.sh: cargo metadata named no target directory" >&2; exit 1; }
  export TENURE_CONFORMANCE_CLIENT="$target_dir/debug/mcp-conformance-client"
  [ -x "$TENURE_CONFORMANCE_CLIENT" ] || { echo "run.sh: $TENURE_CONFORMANCE_CLIENT is missing; build it with cargo build -p mcp-conformance-client" >&2; exit 1; }
  args=()
  for suite in "${suites[@]}"; do args+=(--suite "$suite"); done
  [ -z "$baseline" ] || args+=(--expected-failures "$baseline")
  # root makes a plain network namespace; anyone else gets one inside a user namespace.
  if [ "$(id -u)" = 0 ]; then unshare_flags=-n; else unshare_flags=-rn; fi
  export TENURE_CONFORMANCE_NETNS=1
  exec unshare "$unshare_flags" -- "$0" --no-build "${args[@]}"
fi

# Inside the namespace: only loopback exists, and it starts down.
ip link set lo up
binary="${TENURE_CONFORMANCE_CLIENT:?run.sh: TENURE_CONFORMANCE_CLIENT is set before the namespace}"
base_path=$PATH

# Puts the suite's pinned packages first on PATH and checks their Node.
use_packages() {
  export PATH="$1/node_modules/.bin:$base_path"
  local node_version
  node_version=$(node --version)
  case "$node_version" in
    v22.*) ;;
    *) echo "run.sh: expected Node 22 from $1/node_modules (the suite needs it), found $node_version" >&2; exit 1 ;;
  esac
}

# The extension scenarios (on no revision's timeline) that Tenure implements: the client
# credentials grant with client_secret_basic and with private_key_jwt (SEP-1046), the
# jwt-bearer grants: workload identity federation (SEP-1933) and enterprise-managed
# authorization (SEP-990; `cross-app-access-complete-flow` in 0.1.16), and DPoP-bound tokens
# with and without server nonces (SEP-1932, RFC 9449). The suite runs them but never scores
# them; here they are scored like any other, so that a regression fails the run. Each is run
# only where the pinned suite lists it.
supported_extensions=(auth/client-credentials-basic auth/client-credentials-jwt
  auth/wif-jwt-bearer auth/enterprise-managed-authorization
  auth/cross-app-access-complete-flow auth/dpop auth/dpop-nonce)
is_supported_extension() {
  local name
  for name in "${supported_extensions[@]}"; do [ "$name" = "$1" ] && return 0; done
  return 1
}

# The scenarios of a suite, from the pinned suite's own lists. 0.1.16: `auth` is every auth
# scenario of a dated revision after 2025-03-26, `backcompat` those of 2025-03-26, `draft`
# those tagged draft. 2026-07-28: the auth scenarios that the frozen requirements score for
# clients (`conformance list --requirements`). Both add the supported extensions.
scenarios_of() {
  if [ "$1" = 2026-07-28 ]; then
    conformance list --requirements 2026-07-28 \
      | sed -n '/^Client scenarios/,/^$/s/^  - \(auth\/[^ ]*\)$/\1/p'
    extensions_of 2026-07-28 | while read -r name; do
      if is_supported_extension "$name"; then echo "$name"; fi
    done
    return
  fi
  conformance list | sed -n 's/^  - \(auth\/[^ ]*\) \[\(.*\)\]$/\1 \2/p' | while read -r name versions; do
    case "$1:$versions" in
      backcompat:2025-03-26) echo "$name" ;;
      draft:*draft*) echo "$name" ;;
      auth:*extension*) if is_supported_extension "$name"; then echo "$name"; fi ;;
      auth:*draft*|auth:2025-03-26) ;;
      auth:*) echo "$name" ;;
    esac
  done
}

# The auth scenarios that the frozen requirements run but do not score (the extensions).
extensions_of() {
  [ "$1" = 2026-07-28 ] || return 0
  conformance list --requirements 2026-07-28 \
    | sed -n '/never scored/,$s/^    - \(auth\/[^ ]*\) \[client\]$/\1/p'
}

# Of those, the ones Tenure does not implement: not run here, only named.
unscored_of() {
  extensions_of "$1" | while read -r name; do
    if ! is_supported_extension "$name"; then echo "$name"; fi
  done
}

# The wire a suite's scenarios run at: the 2026-07-28 requirements at that revision's, as
# the suite's own `--requirements 2026-07-28` does.
wire_of() {
  [ "$1" = 2026-07-28 ] && echo "--spec-version 2026-07-28"
  return 0
}

expected=()
if [ -n "$baseline" ]; then
  while read -r name; do expected+=("$name"); done < <(sed -n 's/^[[:space:]]*-[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$baseline")
fi
is_expected() {
  local name
  for name in "${expected[@]+"${expected[@]}"}"; do [ "$name" = "$1" ] && return 0; done
  return 1
}

# Counts the checks of one scenario's checks.json: "SUCCESS FAILURE WARNING".
count_checks() {
  node -e '
    const checks = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const n = s => checks.filter(c => c.status === s).length;
    console.log(`${n("SUCCESS")} ${n("FAILURE")} ${n("WARNING")}`);
    for (const c of checks.filter(c => c.status === "FAILURE" || c.status === "WARNING"))
      console.error(`      ${c.status.toLowerCase()}: ${c.id}: ${c.errorMessage || c.description}`);
  ' "$1"
}

rm -rf "$results"
mkdir -p "$results"
started=$(date +%s)
unexpected=0
summary=()
for suite in "${suites[@]}"; do
  use_packages "$(packages_of "$suite")"
  read -r -a wire <<<"$(wire_of "$suite")"
  mapfile -t names < <(scenarios_of "$suite")
  if [ ${#names[@]} -eq 0 ]; then
    echo "run.sh: the suite lists no $suite scenarios; has the pinned version changed?" >&2
    exit 1
  fi
  echo "== $suite (${#names[@]} scenarios)"
  passed=0
  for name in "${names[@]}"; do
    out="$results/$suite/$name"
    mkdir -p "$out"
    status=0
    # An extension is on no revision's timeline, so at a dated wire the suite skips it
    # unless forced.
    force=()
    if is_supported_extension "$name" && [ ${#wire[@]} -gt 0 ]; then force=(--force); fi
    timeout "$scenario_limit" conformance client --command "$binary" --scenario "$name" \
      "${wire[@]+"${wire[@]}"}" "${force[@]+"${force[@]}"}" -o "$results/$suite" \
      >"$out/conformance.log" 2>&1 || status=$?
    checks=$(find "$results/$suite/$name"-* -name checks.json 2>/dev/null | head -n 1)
    counts="no checks recorded"
    ok=0
    if [ -n "$checks" ]; then
      tally=$(count_checks "$checks" 2>"$out/problems.txt")
      read -r ok failed warned <<<"$tally"
      counts="$ok passed, $failed failed, $warned warnings"
    fi
    if [ "$status" = 124 ]; then counts="timed out after ${scenario_limit}s; $counts"; fi
    # A scenario the suite skipped (not applicable at the wire asked for) records no check:
    # that is no pass.
    if [ "$status" = 0 ] && [ "$ok" = 0 ]; then status=1; fi
    if [ "$status" = 0 ]; then
      passed=$((passed + 1))
      if is_expected "$name"; then
        echo "  STALE  $name ($counts): it passes; remove it from $(basename "$baseline")"
        unexpected=$((unexpected + 1))
      else
        echo "  pass   $name ($counts)"
      fi
    elif is_expected "$name"; then
      echo "  xfail  $name ($counts; in the baseline)"
    else
      echo "  FAIL   $name ($counts; log: ${out#"$root"/}/conformance.log)"
      [ -s "$out/problems.txt" ] && cat "$out/problems.txt"
      grep -m 3 'mcp-conformance-client:' "$out/conformance.log" | sed 's/^/      /' || true
      unexpected=$((unexpected + 1))
    fi
  done
  summary+=("$suite: $passed/${#names[@]} passed")
  mapfile -t unscored < <(unscored_of "$suite")
  if [ ${#unscored[@]} -gt 0 ]; then
    echo "  not run: ${#unscored[@]} auth scenarios that the $suite requirements do not score:"
    printf '    %s\n' "${unscored[@]}"
  fi
done

echo "== summary ($(($(date +%s) - started)) s)"
printf '  %s\n' "${summary[@]}"
if [ "$unexpected" -gt 0 ]; then
  echo "  $unexpected scenario(s) need attention (FAIL or STALE above)"
  exit 1
fi
echo "  all scenarios pass or are in the baseline"
