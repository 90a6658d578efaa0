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
# In the release profile, as the build and the tests: the proc-macros and build scripts that
# set-up's release build compiled serve the lint too.
cargo clippy --release --workspace --all-targets --locked -- -D warnings
cargo test --release --workspace --locked
