#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60). Only stable Rust is
# installed here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags to it.
# A crash fails the run and leaves the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  echo "== fuzz $target for ${secs}s"
  cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time="$secs" -max_len=20000 -rss_limit_mb=2048 2>&1 | tail -n 5
done
