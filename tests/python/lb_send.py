#!/usr/bin/env python3
"""One client of the loadbalancing e2e test: ``--traces`` agent traces of ``--min-spans``..``--max-spans`` spans
(a root AGENT span with LLM/TOOL/RETRIEVER children, as send_spans.py makes them), exported with the real
OpenTelemetry Python SDK (BatchSpanProcessor, OTLP/gRPC) to ``--endpoint``.

Writes ``<trace id hex> <span id hex>`` for every span whose export *succeeded* to ``--out`` (one per line).
``--rate`` caps traces per second (0: as fast as possible) so a run can be made to last through a fault.
Exits 0 when every span was exported, 1 otherwise, 3 when ``--timeout`` seconds pass.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import random
import sys
import threading
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from send_spans import emit_trace, make_exporter  # noqa: E402


class Acked(SpanExporter):
    """Records the ids of spans whose export succeeded."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                for s in spans:
                    c = s.get_span_context()
                    self.ids.append(f"{c.trace_id:032x} {c.span_id:016x}")
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="127.0.0.1:PORT (OTLP/gRPC)")
    ap.add_argument("--traces", type=int, required=True)
    ap.add_argument("--min-spans", type=int, default=5)
    ap.add_argument("--max-spans", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.0, help="traces per second; 0: no limit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--run-id", default="lb")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    if args.traces < 1 or not 1 <= args.min_spans <= args.max_spans:
        print("bad arguments", file=sys.stderr)
        return 2
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    exporter = Acked(make_exporter("grpc", args.endpoint, "none", 30.0))
    provider = TracerProvider(resource=Resource.create({"service.name": f"lb-client-{args.seed}"}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=100_000, max_export_batch_size=256, schedule_delay_millis=50)
    )
    tracer = provider.get_tracer("spanpipe.e2e.loadbalancing")
    rng = random.Random(args.seed)
    created = 0
    start = time.monotonic()
    for n in range(args.traces):
        if args.rate > 0:
            # One reading of the clock: checking then reading again raced (a negative sleep is a ValueError).
            wait = start + n / args.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        created += emit_trace(tracer, rng, rng.randint(args.min_spans, args.max_spans), args.run_id, n)
    provider.force_flush(60_000)
    provider.shutdown()
    with open(args.out, "w", encoding="ascii") as fh:
        fh.write("".join(line + "\n" for line in exporter.ids))
    print(f"created={created} acked={len(exporter.ids)} failed={exporter.failed}", file=sys.stderr)
    return 0 if len(exporter.ids) == created else 1


if __name__ == "__main__":
    sys.exit(main())
