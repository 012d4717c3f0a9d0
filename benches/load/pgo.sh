#!/bin/bash
# Trains pgo/usher.profdata, the profile Usher's release build is optimized with
# (profile-guided optimization; see docs/benchmarks.md, "Profile-guided build").
#
#   benches/load/pgo.sh          # retrain pgo/usher.profdata (about 20 minutes on 2 cores)
#
# Builds an instrumented release binary into its own target directory, runs it through the
# benchmarks' own scenarios on 127.0.0.1 (instructions.sh's plain, JWT, full-pipeline and
# Redis-limited routes; edge.py's TLS and HTTP/2 clients; money.py's buffered, validated and
# idempotent POSTs; webhook.py's signature checks), so no path the benchmarks measure is
# left cold, and merges what it wrote with the toolchain's own llvm-profdata
# (`rustup component add llvm-tools`). Every benchmark bounds its run and stops what it
# starts by PID; Usher writes its counters when it exits on SIGTERM.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# The instrumented build keeps a fixed counter directory, so its target directory stays warm.
GEN=$TARGET/pgo-generate
RAW=$GEN/profraw
PROFDATA=$(rustc --print target-libdir)/../bin/llvm-profdata
[ -x "$PROFDATA" ] || rustup component add llvm-tools
rm -rf "$RAW"
mkdir -p "$RAW"
export PGO_PROFILE_FILE=$RAW/usher-%p-%m.profraw
RUSTFLAGS="-Cprofile-generate=$RAW" CARGO_TARGET_DIR=$GEN \
    cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" --bin usher
for scenario in plain jwt full redis; do
    "$ROOT/benches/load/instructions.sh" "$GEN/release/usher" "$scenario"
done
# The Python benchmarks run $USHER_BINARY beside the ordinary build of their helpers.
cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" \
    --example bench_upstream --example bare_proxy_mimalloc
export USHER_BINARY=$GEN/release/usher LLVM_PROFILE_FILE=$PGO_PROFILE_FILE
python3 "$ROOT/benches/load/edge.py" --sections throughput --rounds 1 --duration 2 --no-build \
    --json "$RAW/edge.json" > /dev/null
python3 "$ROOT/benches/load/money.py" --rounds 1 --duration 2 > /dev/null
python3 "$ROOT/benches/load/webhook.py" --rounds 1 --requests 2000 > /dev/null

OUT=$ROOT/pgo/usher.profdata
mkdir -p "$(dirname "$OUT")"
"$PROFDATA" merge -sparse -o "$OUT" "$RAW"/*.profraw
echo "$(ls "$RAW"/*.profraw | wc -l) profiles merged into $OUT"
