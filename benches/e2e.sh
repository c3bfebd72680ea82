#!/usr/bin/env bash
# End-to-end benchmark of spanpipe on this machine:
#   spanpipe-loadgen send --(OTLP gRPC)--> spanpipe (otlp receiver -> batch -> 2 x otlp exporter) --> 2 sinks
# The sinks count every span id, so the run reports loss and duplication as well as speed and cost.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
#
# Parameters (environment):
#   TOTAL=2000000            spans to send
#   RATE=                    spans/s (empty: flat out)
#   CONNECTIONS=4            loadgen connections (one request in flight each)
#   SPANS_PER_REQUEST=500    spans per loadgen request
#   SPANS_PER_TRACE=10
#   COMPRESSION=none         loadgen -> spanpipe (none|gzip|zstd)
#   EXPORT_COMPRESSION=none  spanpipe -> sinks; loopback, so compressing only burns CPU
#   BUILD=1                  0: use the existing release binaries
#   SINK_IDLE=3s             a sink reports once it has had no data for this long
#   KEEP=0                   1: keep the temp dir (config, logs, reports)
#   PERF=0                   1: sample spanpipe with `perf record -e cpu-clock` while it works; top symbols on stderr
#   RSS_LOG=0                1: print spanpipe's VmRSS once a second during the run (stderr), to tell growth from a plateau
#   NO_SPANMETRICS=0         1: leave mlflow_spanmetrics/prometheus out of the pipeline (to see their share)
#   SINK_NICE=0              nice level of the two sinks; e.g. 10 so their bursts of decoding (a whole batch at a
#                            time) take less CPU from spanpipe, as backends on other machines would
#   PERF_OPTS="-F 1999 -g"   e.g. "-F 499 --call-graph dwarf,16384" for user-space callers (KEEP=1, then perf report)
#
# Output: progress on stderr, ONE result line on stdout.
set -euo pipefail

TOTAL=${TOTAL:-2000000}
RATE=${RATE:-}
CONNECTIONS=${CONNECTIONS:-4}
SPANS_PER_REQUEST=${SPANS_PER_REQUEST:-500}
SPANS_PER_TRACE=${SPANS_PER_TRACE:-10}
COMPRESSION=${COMPRESSION:-none}
EXPORT_COMPRESSION=${EXPORT_COMPRESSION:-none}
BUILD=${BUILD:-1}
SINK_IDLE=${SINK_IDLE:-3s}
KEEP=${KEEP:-0}
PERF=${PERF:-0}
PERF_OPTS=${PERF_OPTS:--F 1999 -g}
RSS_LOG=${RSS_LOG:-0}
SINK_NICE=${SINK_NICE:-0}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
log() { echo "e2e: $*" >&2; }

if [[ "$BUILD" == 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -q -p spanpipe -p spanpipe-loadgen) >&2
fi
for b in spanpipe spanpipe-loadgen; do
    [[ -x "$BIN/$b" ]] || { log "missing $BIN/$b (run with BUILD=1)"; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/spanpipe-e2e.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded wait, then force.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ "$KEEP" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: bind port 0 and read what the kernel chose (a tiny race with other processes is accepted).
read -r P_RECV P_SINK1 P_SINK2 P_PROM P_TELEM < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)

# Optional components: only when this build has them.
COMPONENTS=$("$BIN/spanpipe" components)
has_component() { # kind name
    awk -v kind="$1:" -v name="  - $2" '$0 ~ /^[a-z]+:/ { cur = $0 } cur == kind && $0 == name { found = 1 } END { exit !found }' <<<"$COMPONENTS"
}
SPANMETRICS=0
if [[ "${NO_SPANMETRICS:-0}" != 1 ]] && has_component connectors mlflow_spanmetrics && has_component exporters prometheus; then
    SPANMETRICS=1
fi

write_config() { # with_spanmetrics
    local conn_exp="" conn_block="" metrics_pipeline="" prom_block=""
    if [[ "$1" == 1 ]]; then
        conn_exp=", mlflow_spanmetrics"
        conn_block=$'connectors:\n  mlflow_spanmetrics:\n'
        prom_block=$'  prometheus:\n    endpoint: 127.0.0.1:'"$P_PROM"$'\n'
        metrics_pipeline=$'    metrics:\n      receivers: [mlflow_spanmetrics]\n      exporters: [prometheus]\n'
    fi
    cat >"$TMP/spanpipe.yaml" <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$P_RECV
processors:
  batch:
exporters:
  otlp/sink1:
    endpoint: 127.0.0.1:$P_SINK1
    tls: { insecure: true }
    compression: $EXPORT_COMPRESSION
    # Short retries: a sink reports after SINK_IDLE without data, so a retry must come back sooner.
    retry_on_failure: { initial_interval: 200ms, max_interval: 1s }
  otlp/sink2:
    endpoint: 127.0.0.1:$P_SINK2
    tls: { insecure: true }
    compression: $EXPORT_COMPRESSION
    retry_on_failure: { initial_interval: 200ms, max_interval: 1s }
$prom_block$conn_block
service:
  telemetry:
    logs: { level: warn }
    metrics: { address: 127.0.0.1:$P_TELEM }
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp/sink1, otlp/sink2$conn_exp]
$metrics_pipeline
EOF
}

write_config "$SPANMETRICS"
if [[ "$SPANMETRICS" == 1 ]] && ! "$BIN/spanpipe" validate --config "$TMP/spanpipe.yaml" 2>"$TMP/validate.err"; then
    log "mlflow_spanmetrics/prometheus exist but the guessed config is invalid ($(head -1 "$TMP/validate.err")); running without them"
    SPANMETRICS=0
    write_config 0
fi
if [[ "$SPANMETRICS" == 1 ]]; then
    EXTRA="mlflow_spanmetrics->prometheus on"
else
    EXTRA="mlflow_spanmetrics/prometheus absent in this build: skipped"
fi
log "$EXTRA"

SINK_TIMEOUT=300
for i in 1 2; do
    port_var="P_SINK$i"
    nice -n "$SINK_NICE" "$BIN/spanpipe-loadgen" --threads 1 sink --grpc "127.0.0.1:${!port_var}" --report "$TMP/sink$i.json" \
        --idle-exit "$SINK_IDLE" --max-duration "${SINK_TIMEOUT}s" --expect "$TOTAL" \
        >"$TMP/sink$i.out" 2>"$TMP/sink$i.err" &
    PIDS+=($!)
    declare "SINK${i}_PID=$!"
done

"$BIN/spanpipe" --config "$TMP/spanpipe.yaml" >"$TMP/spanpipe.out" 2>"$TMP/spanpipe.err" &
SPANPIPE_PID=$!
PIDS+=("$SPANPIPE_PID")

wait_port() { # port: bounded at 10 s
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
for p in "$P_RECV" "$P_SINK1" "$P_SINK2"; do
    wait_port "$p" || { log "port $p did not open; spanpipe log:"; tail -20 "$TMP/spanpipe.err" >&2; exit 1; }
done

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
CPU0=$(cpu_ticks "$SPANPIPE_PID")

PERF_PID=
if [[ "$PERF" == 1 ]]; then
    # shellcheck disable=SC2086 # PERF_OPTS is a list of options
    perf record -q -e cpu-clock $PERF_OPTS -p "$SPANPIPE_PID" -o "$TMP/perf.data" 2>"$TMP/perf.err" &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    sleep 0.5
fi

if [[ "$RSS_LOG" == 1 ]]; then
    # Bounded by the sink timeout; ends with spanpipe.
    for _ in $(seq "$SINK_TIMEOUT"); do
        awk '/^VmRSS:/ { printf "%d ", $2 / 1024 }' "/proc/$SPANPIPE_PID/status" 2>/dev/null || break
        sleep 1
    done >"$TMP/rss.log" &
    PIDS+=($!)
fi

RATE_ARG=()
[[ -n "$RATE" ]] && RATE_ARG=(--rate "$RATE")
log "sending $TOTAL spans: $SPANS_PER_REQUEST/request, $CONNECTIONS connections, rate ${RATE:-max}, compression $COMPRESSION"
"$BIN/spanpipe-loadgen" send --endpoint "127.0.0.1:$P_RECV" --protocol grpc --connections "$CONNECTIONS" \
    --spans-per-request "$SPANS_PER_REQUEST" --spans-per-trace "$SPANS_PER_TRACE" --total "$TOTAL" \
    --compression "$COMPRESSION" "${RATE_ARG[@]}" --hard-timeout 600s >"$TMP/loadgen.out" 2>"$TMP/loadgen.err" || true
head -1 "$TMP/loadgen.out" >&2 || true

# The sinks report and exit SINK_IDLE after their last data; bounded, then asked to report with SIGTERM.
for _ in $(seq $((SINK_TIMEOUT * 10))); do
    kill -0 "$SINK1_PID" 2>/dev/null || kill -0 "$SINK2_PID" 2>/dev/null || break
    sleep 0.1
done
CPU1=$(cpu_ticks "$SPANPIPE_PID" 2>/dev/null || echo "$CPU0")
HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SPANPIPE_PID/status" 2>/dev/null || echo 0)
# spanpipe's own share of the ack latency (headers to answer, from its request-duration summary), p50/p99 in ms.
SERVER_MS=$(python3 - "$P_TELEM" <<'EOF' 2>/dev/null || echo "n/a n/a"
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
q = {}
for line in text.splitlines():
    if line.startswith("spanpipe_receiver_request_duration_seconds{") and 'transport="grpc"' in line:
        for want in ("0.5", "0.99"):
            if f'quantile="{want}"' in line:
                q[want] = float(line.rsplit(" ", 1)[1]) * 1000
print(f"{q.get('0.5', float('nan')):.2f} {q.get('0.99', float('nan')):.2f}")
EOF
)
for pid in "$SINK1_PID" "$SINK2_PID"; do kill "$pid" 2>/dev/null || true; done
[[ "$RSS_LOG" == 1 ]] && log "spanpipe VmRSS MiB, once a second: $(cat "$TMP/rss.log")"
if [[ -n "$PERF_PID" ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PERF_PID" 2>/dev/null || break; sleep 0.1; done
    log "perf: top spanpipe symbols by self time (all threads)"
    perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
        | grep -E '^ +[0-9]' | head -25 | cut -c1-110 | sed 's/ *$//' >&2 || true
fi
for _ in $(seq 50); do
    [[ -s "$TMP/sink1.json" && -s "$TMP/sink2.json" ]] && break
    sleep 0.1
done

python3 - "$TMP" "$CPU0" "$CPU1" "$CLK_TCK" "$HWM_KB" "$TOTAL" "$SPANS_PER_REQUEST" "$CONNECTIONS" "${RATE:-max}" \
    "$COMPRESSION" "$EXPORT_COMPRESSION" "$SPANMETRICS" "$SINK_NICE" $SERVER_MS <<'EOF'
import json, sys
tmp, cpu0, cpu1, tck, hwm_kb, total, spr, conns, rate, comp, ecomp, sm, sink_nice, srv50, srv99 = sys.argv[1:]
def last_json(path):
    try:
        lines = [l for l in open(path) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except OSError:
        return {}
lg = last_json(f"{tmp}/loadgen.out")
sinks = [last_json(f"{tmp}/sink{i}.json") for i in (1, 2)]
acked = lg.get("acked_spans", 0)
start_ms = lg.get("start_unix_ms", 0)
rates, lost, dups = [], [], []
for s in sinks:
    unique = s.get("unique", 0)
    last = s.get("last_arrival_unix_ms") or start_ms
    secs = max((last - start_ms) / 1000, 1e-9)
    rates.append(f"{unique / secs:,.0f}" if unique else "0")
    lost.append(str(acked - unique))
    dups.append(str(s.get("duplicates", "?")))
delivered = min((s.get("unique", 0) for s in sinks), default=0)
cpu_s = (int(cpu1) - int(cpu0)) / int(tck)
per_m = f"{cpu_s / delivered * 1e6:.2f}" if delivered else "n/a"
per_cpu_s = f"{delivered / cpu_s:,.0f}" if cpu_s > 0 else "n/a"
p99 = lg.get("latency_ms", {}).get("p99", float("nan"))
failed = lg.get("failed_spans", "?")
print(f"e2e total={total} spans/req={spr} conns={conns} rate={rate} in={comp} out={ecomp} spanmetrics={'on' if sm == '1' else 'absent'}"
      f" | delivered spans/s sink1={rates[0]} sink2={rates[1]}"
      f" | spanpipe CPU-s per M spans={per_m} ({per_cpu_s} spans per CPU-s, {cpu_s:.2f} CPU-s)"
      f" | peak RSS={int(hwm_kb) / 1024:.0f} MiB"
      f" | loadgen acked={acked} failed={failed} p99 ack={p99:.1f} ms (spanpipe's share p50 {srv50} / p99 {srv99} ms)"
      f"{'' if sink_nice == '0' else f' | sinks at nice {sink_nice}'}"
      f" | lost sink1={lost[0]} sink2={lost[1]} | duplicated sink1={dups[0]} sink2={dups[1]}")
EOF
