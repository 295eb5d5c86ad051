#!/usr/bin/env bash
# Entry point of the npm scripts: sets up the toolchain (scripts/env.sh), then runs the task.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
portcullis_env
cd "$PORTCULLIS_ROOT"
task="${1:-}"; shift || true
case "$task" in
  quickstart) exec "$PORTCULLIS_NODE" dist/examples/quickstart/start.js "$@" ;;
  # The tests are type-checked too (ts-jest only transpiles): one tsc over src, test, bench, examples;
  # then Biome, the one linter and formatter (biome.json; `npm run lint` applies its fixes).
  test)       ensure_rsyslog; ensure_tunnel; ensure_moto; ensure_chromium; "$PORTCULLIS_NODE" node_modules/typescript/bin/tsc -p tsconfig.test.json
              "$PORTCULLIS_NODE" node_modules/@biomejs/biome/bin/biome ci --colors=off .
              exec "$PORTCULLIS_NODE" node_modules/jest/bin/jest.js "$@" ;;
  lint)       exec "$PORTCULLIS_NODE" node_modules/@biomejs/biome/bin/biome check --write . ;;
  soak-restart) PORTCULLIS_RESTART_ROUNDS="${PORTCULLIS_RESTART_ROUNDS:-100}" exec "$PORTCULLIS_NODE" node_modules/jest/bin/jest.js test/integration/audit-restart.test.ts "$@" ;;
  bench)      exec "$PORTCULLIS_NODE" dist/bench/run.js "$@" ;;
  bench-audit) exec "$PORTCULLIS_NODE" dist/bench/audit.js "$@" ;;
  bench-audit-view) exec "$PORTCULLIS_NODE" dist/bench/audit-view.js "$@" ;;
  bench-fsync) exec "$PORTCULLIS_NODE" dist/bench/fsync.js "$@" ;;
  bench-mcp)  BENCH_WORKLOADS=mcp exec "$PORTCULLIS_NODE" dist/bench/run.js "$@" ;;
  bench-soak) exec "$PORTCULLIS_NODE" dist/bench/soak.js "$@" ;;
  bench-jwt)  BENCH_WORKLOADS="${BENCH_WORKLOADS:-jwt}" exec "$PORTCULLIS_NODE" dist/bench/run.js "$@" ;;
  bench-cred) BENCH_WORKLOADS="${BENCH_WORKLOADS:-cred}" exec "$PORTCULLIS_NODE" dist/bench/run.js "$@" ;;
  bench-masking) exec "$PORTCULLIS_NODE" dist/bench/masking.js "$@" ;;
  bench-sigv4) exec "$PORTCULLIS_NODE" dist/bench/sigv4.js "$@" ;;
  bench-replay) exec "$PORTCULLIS_NODE" dist/bench/replay.js "$@" ;;
  # A CPU profile as a flame graph: `npm run flamegraph -- PROFILE.cpuprofile|NAME.perf.data OUT.svg [title] [skip-seconds]`.
  # A perf recording (BENCH_PERF=1, NAME.perf.data) is turned into stacks by perf itself; skip-seconds is ignored.
  flamegraph) ensure_inferno; prof="$1"; svg="$2"; title="${3:-$(basename "$1")}"; skip="${4:-0}"
              count=us
              if [[ "$prof" == *.perf.data ]]; then
                count=samples
                perf script -i "$prof" 2>/dev/null | "$(dirname "$PORTCULLIS_FLAMEGRAPH")/inferno-collapse-perf" --all > "$svg.folded"
                "$PORTCULLIS_NODE" dist/bench/perf-summary.js "$svg.folded" --top 25
              else
                "$PORTCULLIS_NODE" dist/bench/profile.js "$prof" --top 25 --skip-seconds "$skip" --folded "$svg.folded"
              fi
              "$PORTCULLIS_FLAMEGRAPH" --title "$title" --countname "$count" --width 1600 --minwidth 0.1 "$svg.folded" > "$svg"; rm -f "$svg.folded"
              say "flame graph written to $svg" ;;
  schema)     exec "$PORTCULLIS_NODE" dist/src/config/write-schema.js "$@" ;;
  *) echo "usage: scripts/run.sh quickstart|test|lint|soak-restart|bench|bench-audit|bench-audit-view|bench-fsync|bench-mcp|bench-soak|bench-jwt|bench-cred|bench-masking|bench-sigv4|bench-replay|flamegraph|schema [args]" >&2; exit 2 ;;
esac
