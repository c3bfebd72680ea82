#!/usr/bin/env python3
"""A deterministic GenAI-agent workload from the real OpenTelemetry Python SDK, for the MLflow end-to-end tests.

The same arguments produce the same traces (names, parent links, statuses, attributes, events; only ids and
times differ), so a run sent through spanpipe and a run sent directly to MLflow's ``/v1/traces`` can be compared
trace by trace (``spanpipe.test.trace_no`` on every span says which trace it belongs to).

* ``--protocol http/protobuf --endpoint http://HOST:PORT/v1/traces [--header k=v ...]``
* ``--protocol grpc --endpoint 127.0.0.1:PORT``

Writes the hex span id of every exported span to ``--ids-out``; prints one JSON summary line on stdout. Exits 0
only when every span was exported; the run is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

TOOLS = ["web_search", "sql_query", "calculator"]


class Recorder(SpanExporter):
    """Delegates to the real exporter and remembers the span ids it acknowledged."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.lock = threading.Lock()
        self.ok: list[str] = []
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.ok.extend(format(s.context.span_id, "016x") for s in spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def exporter(protocol: str, endpoint: str, headers: dict[str, str]) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=tuple(headers.items()), timeout=30)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=30)


def emit(tracer, trace_no: int, size: int, run_id: str) -> int:
    """One agent run: root AGENT span, then LLM / TOOL / RETRIEVER children, a grandchild under every TOOL."""
    common = {"spanpipe.test.trace_no": trace_no, "spanpipe.test.run_id": run_id}
    created = 1
    with tracer.start_as_current_span(
        "agent.run",
        kind=SpanKind.SERVER,
        attributes={
            **common,
            "mlflow.spanType": json.dumps("AGENT"),
            "mlflow.spanInputs": json.dumps({"question": f"what is {trace_no} squared?"}),
            "gen_ai.operation.name": "invoke_agent",
            "session.id": f"session-{trace_no % 3}",
        },
    ) as root:
        i = 0
        while created < size:
            kind = i % 3
            if kind == 0:
                attrs = {
                    **common,
                    "mlflow.spanType": json.dumps("LLM"),
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 100 + trace_no,
                    "gen_ai.usage.output_tokens": 20 + i,
                    "gen_ai.response.finish_reasons": ["stop"],
                }
                with tracer.start_as_current_span(f"llm.{i}", kind=SpanKind.CLIENT, attributes=attrs) as s:
                    s.add_event("gen_ai.content.prompt", {"gen_ai.prompt": f"step {i} of {trace_no}"})
                created += 1
            elif kind == 1:
                tool = TOOLS[(trace_no + i) % len(TOOLS)]
                attrs = {**common, "mlflow.spanType": json.dumps("TOOL"), "gen_ai.tool.name": tool}
                with tracer.start_as_current_span(f"tool.{i}", attributes=attrs) as s:
                    created += 1
                    if created < size:
                        with tracer.start_as_current_span(f"tool.{i}.http", kind=SpanKind.CLIENT,
                                                          attributes={**common, "http.status_code": 200}):
                            created += 1
                    if (trace_no + i) % 5 == 0:
                        s.set_status(Status(StatusCode.ERROR, f"{tool} timed out"))
            else:
                attrs = {
                    **common,
                    "mlflow.spanType": json.dumps("RETRIEVER"),
                    "mlflow.spanOutputs": json.dumps([{"doc": f"d{trace_no}-{i}", "score": 0.5}]),
                }
                with tracer.start_as_current_span(f"retrieve.{i}", attributes=attrs):
                    created += 1
            i += 1
        root.set_attribute("mlflow.spanOutputs", json.dumps({"answer": trace_no * trace_no}))
        if trace_no % 7 == 3:
            root.set_status(Status(StatusCode.ERROR, "agent gave up"))
        else:
            root.set_status(Status(StatusCode.OK))
    return created


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["grpc", "http/protobuf"], default="http/protobuf")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--header", action="append", default=[], help="k=v, repeatable")
    ap.add_argument("--traces", type=int, default=10)
    ap.add_argument("--spans-per-trace", type=int, default=5)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--service-name", default="spanpipe-mlflow-e2e")
    ap.add_argument("--resource", action="append", default=[], help="extra resource attribute k=v")
    ap.add_argument("--ids-out", required=True)
    ap.add_argument("--pace-ms", type=float, default=0.0, help="pause between traces (spans keep flowing)")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    headers = dict(h.split("=", 1) for h in args.header)
    extra = dict(r.split("=", 1) for r in args.resource)

    started = time.monotonic()
    rec = Recorder(exporter(args.protocol, args.endpoint, headers))
    total = args.traces * args.spans_per_trace
    provider = TracerProvider(resource=Resource.create({"service.name": args.service_name, **extra}))
    provider.add_span_processor(
        BatchSpanProcessor(rec, max_queue_size=total + 1024, schedule_delay_millis=50, max_export_batch_size=512)
    )
    tracer = provider.get_tracer("spanpipe.e2e.mlflow", "0.1.0")
    created = 0
    for t in range(args.traces):
        created += emit(tracer, t, args.spans_per_trace, args.run_id)
        if args.pace_ms:
            time.sleep(args.pace_ms / 1000)
    flushed = provider.force_flush(timeout_millis=int(max(1.0, args.timeout - 10) * 1000))
    provider.shutdown()
    elapsed = time.monotonic() - started
    with open(args.ids_out, "w", encoding="ascii") as fh:
        fh.writelines(f"{sid}\n" for sid in rec.ok)
    print(json.dumps({"created": created, "exported": len(rec.ok), "failed": rec.failed, "elapsed": elapsed}))
    faulthandler.cancel_dump_traceback_later()
    return 0 if flushed and not rec.failed and len(rec.ok) == created else 1


if __name__ == "__main__":
    sys.exit(main())
