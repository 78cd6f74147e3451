# Sourced by the scripts in deploy/local: a Rust toolchain matching rust-toolchain.toml, and a
# target directory outside the clone so that reruns and fresh clones reuse earlier builds.

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}

ensure_rust_toolchain() {
  local root want
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust $want with rustup" >&2; return 1; }
  command -v rustup >/dev/null || return 0
  # The machines carry the toolchain as `stable`; give it the pinned name without downloading.
  if ! (cd / && rustup toolchain list) | grep -q "^$want"; then
    local stable
    stable=$(cd / && rustc +stable --version 2>/dev/null | awk '{print $2}')
    if [ "$stable" = "$want" ]; then
      (cd / && rustup toolchain link "$want" "$(rustc +stable --print sysroot)")
    else
      (cd / && rustup toolchain install "$want" --profile minimal -c rustfmt -c clippy)
    fi
  fi
}
