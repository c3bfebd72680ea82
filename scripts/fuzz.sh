#!/usr/bin/env bash
# Fuzzes spanpipe's OTLP request handling, the shared wire layer (the receiver's door, readers, rewriter) and the
# config loader (targets in fuzz/, its own cargo workspace).
#
#   bash scripts/fuzz.sh [SECONDS]     # build, then run every target for SECONDS (default 60); prints executions
#                                      # and crashes per target; exit 1 when any target crashed
#   bash scripts/fuzz.sh --build-only  # build the targets (what scripts/test.sh runs)
#   bash scripts/fuzz.sh --check-only  # type-check the targets without cargo-fuzz (cheapest)
#
# cargo-fuzz drives libFuzzer, which needs nightly-only rustc flags (-Zsanitizer, sancov). The machine has stable
# Rust only, so RUSTC_BOOTSTRAP=1 unlocks them on the stable compiler. cargo-fuzz is installed from crates.io into
# ~/.cargo/bin when missing. Crash inputs land in fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/.
# Reproduce a crash: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> artifacts/<target>/crash-...).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
FUZZ_DIR="$(pwd)"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
# The fuzz workspace keeps its own target dir: sanitizer-instrumented artifacts share nothing with the main build.
unset CARGO_TARGET_DIR

MODE="run"
SECONDS_PER_TARGET=60
case "${1:-}" in
  --build-only) MODE="build" ;;
  --check-only) MODE="check" ;;
  "") ;;
  *[!0-9]*) echo "usage: $0 [SECONDS | --build-only | --check-only]" >&2; exit 2 ;;
  *) SECONDS_PER_TARGET="$1" ;;
esac

if [[ "$MODE" == "check" ]]; then
  cargo check --quiet --bins
  echo "fuzz targets type-check"
  exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi

cargo fuzz build -O
mapfile -t TARGETS < <(cargo fuzz list)
echo "built ${#TARGETS[@]} fuzz targets: ${TARGETS[*]}"
[[ "$MODE" == "build" ]] && exit 0

# Small seeds so the fuzzer starts from valid requests (it mutates them into the hostile ones).
seed() { mkdir -p "corpus/$1"; printf '%b' "$3" > "corpus/$1/$2"; }
PB='\x0a\x23\x12\x21\x12\x1f\x0a\x10\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x12\x08\x01\x02\x03\x04\x05\x06\x07\x08\x2a\x01\x6e'
JSON='{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","parentSpanId":"","name":"n","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"k","value":{"arrayValue":{"values":[{"intValue":"3"},{"doubleValue":1.5},{"kvlistValue":{"values":[]}}]}}}],"events":[{"name":"e","timeUnixNano":"1"}],"status":{"code":2,"message":"m"}}]}]}]}'
seed wire_scan span.pb "$PB"
# wire_door: first byte = max_attribute_depth (32); wire_rewrite: first byte = the edits (0x1f: all of them).
seed wire_door span.pb "\x20$PB"
seed wire_rewrite span.pb "\x1f$PB"
seed json_decode span.json "\x00$JSON"
seed http_decode span.pb "\x00$PB"
seed http_decode span.json "\x04$JSON"
# gRPC: one uncompressed frame (flag 0, 4-byte length) around the protobuf seed.
seed grpc_decode span.frame "\x00\x00\x00\x00\x00\x25$PB"
mkdir -p corpus/config_load
for f in ../configs/*.yaml; do cp "$f" "corpus/config_load/$(basename "$f")"; done

crashed=0
printf '%-14s %14s %8s\n' target executions crashes
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="$FUZZ_DIR/artifacts/$t.log"
  # -rss_limit_mb keeps a memory blow-up a finding rather than an OOM of the machine; -timeout flags hangs.
  set +e
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
    -timeout=10 -max_len=65536 -print_final_stats=1 > "$log" 2>&1
  set -e
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  [[ -z "$execs" ]] && execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  after=$(find "artifacts/$t" -type f | wc -l)
  crashes=$((after - before))
  [[ $crashes -gt 0 ]] && crashed=1
  printf '%-14s %14s %8s\n' "$t" "${execs:-?}" "$crashes"
  if [[ $crashes -gt 0 ]]; then grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 | sed 's/^/    /'; fi
done
exit $crashed
