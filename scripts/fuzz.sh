#!/usr/bin/env bash
# Runs tessera's fuzz targets under libFuzzer (cargo fuzz), each for FUZZ_SECONDS (default 300), with
# the committed corpus (fuzz/corpus/<target>) as the start; new interesting inputs are added to it.
# A crash stops the run and leaves its input in fuzz/artifacts/<target>/: fix the bug, then copy the
# input to fuzz/regressions/<target>/ so that every `cargo test` replays it.
#
#   scripts/fuzz.sh                 # every target, 5 minutes each
#   FUZZ_SECONDS=30 scripts/fuzz.sh http jws
#
# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them. No sanitizer:
# tessera is safe Rust, so what matters is panics and broken invariants, which the targets assert.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-300}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config http jws jwk claims_template)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
# The versions the workspace is tested with (cargo adds libfuzzer-sys and drops what is unused).
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run --fuzz-dir fuzz --sanitizer none "$target" "fuzz/corpus/$target" "fuzz/regressions/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
done
