# Sourced by setup.sh and test.sh (cargo on PATH). The workspace's own crates are compiled through
# clippy-driver, which builds exactly as rustc does and adds clippy's lints: the test command then
# reads the lints from the build it needs anyway (cargo replays a fresh crate's warnings), instead
# of a check-only build of all 258 dependencies (110-150 s of CI). Set-up and tests must agree:
# cargo keeps the crates built with and without the wrapper apart, so a mismatch rebuilds them.
if [ -z "${RUSTC_WORKSPACE_WRAPPER:-}" ] && driver=$(command -v clippy-driver 2>/dev/null); then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
fi
