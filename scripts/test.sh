#!/usr/bin/env bash
# Runs every test: set-up first (without the demo; quick when all is installed), the format and
# lint checks, then the workspace's unit, integration and GStreamer Harness tests on the release
# build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh --no-demo
export PATH="$HOME/.cargo/bin:$PATH"
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
cargo fmt --all --check
source scripts/lint-env.sh
# A workspace wrapper of the user's own (sccache, say) is not clippy: then lint as before.
if [ "$(basename "${RUSTC_WORKSPACE_WRAPPER:-}")" = clippy-driver ]; then
  # Every target built through clippy-driver (scripts/lint-env.sh): the tests, the benches (so
  # that they keep compiling) and the examples. Any warning, clippy's or rustc's, fails the run
  # as `cargo clippy -- -D warnings` would.
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  cargo test --release --workspace --tests --benches --examples --locked --no-run 2>&1 | tee "$log"
  if grep -qE "generated [0-9]+ warnings?" "$log"; then
    echo "test.sh: the build above has warnings; none are allowed" >&2
    exit 1
  fi
else
  cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi
# One test thread more than the cores: the CLI's integration tests spend much of their time
# waiting on streams played in real time (a camera that hangs, a disk that fills at the clip's
# pace), which a thread more fills (that binary alone on 2 cores, 2026-12-07: 288 s with three
# threads against 345 s with two and 311 s with four; then in turns 333 and 304 s with three
# against 355 and 333 s with two).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(( $(nproc) + 1 ))}"
cargo test --release --workspace --locked
