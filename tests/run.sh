#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain:
# installs what the build and the tests need (cmake for pingora's zlib-ng,
# Chromium for the real-browser suite, promtool for the metrics lint, curl for
# the HTTP/2 client checks, systemd-analyze and kubernetes-validate for deploy/)
# when it is missing and we may install, then checks formatting (rustfmt) and lints
# (clippy, warnings are errors) and runs every test. The README's test command;
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} — install them (Debian: apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi

# kubernetes-validate (the Kubernetes JSON schemas, offline) in a venv under target/.
kv=target/tools/venv
if [ ! -x "$kv/bin/kubernetes-validate" ]; then
  python3 -m venv "$kv"
  "$kv/bin/pip" install -q 'kubernetes-validate==1.37.0'
fi
# The tool checks fail rather than skip when a tool is missing.
export TAGWARDEN_REQUIRE_TOOLS=1

test -d ../shared/corpus/pages || { echo "../shared/corpus/pages is missing: check the repository out with shared/ beside it" >&2; exit 1; }

# Formatting and lints first: a clippy warning fails the run like a test does.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
# libFuzzer, time-boxed, where cargo-fuzz and nightly are installed (else it says it skipped).
tests/fuzz/ci.sh
