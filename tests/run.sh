#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain:
# installs what the build and the tests need (cmake for pingora's zlib-ng,
# Chromium for the real-browser suite, promtool for the metrics lint) when it is
# missing and we may install, then checks formatting (rustfmt) and lints
# (clippy, warnings are errors) and runs every test. The README's test command;
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
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

test -d ../shared/corpus/pages || { echo "../shared/corpus/pages is missing: check the repository out with shared/ beside it" >&2; exit 1; }

# Formatting and lints first: a clippy warning fails the run like a test does.
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked "$@"
# libFuzzer, time-boxed, where cargo-fuzz and nightly are installed (else it says it skipped).
tests/fuzz/ci.sh
