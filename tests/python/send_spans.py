#!/usr/bin/env python3
"""Send realistic GenAI-agent traces to an OTLP endpoint with the real OpenTelemetry Python SDK.

Creates ``--spans`` spans grouped in traces of ``--trace-size`` spans each (a root AGENT span with LLM, TOOL,
RETRIEVER ... children), exports them through a BatchSpanProcessor with

* ``--protocol grpc``           the SDK's OTLP/gRPC ``OTLPSpanExporter``      (``--endpoint 127.0.0.1:4317``)
* ``--protocol http/protobuf``  the SDK's OTLP/HTTP ``OTLPSpanExporter``      (``--endpoint http://127.0.0.1:4318``)
* ``--protocol http/json``      :class:`OtlpJsonSpanExporter` below (the SDK has no OTLP/JSON exporter)

and writes the hex span id of every span whose export *succeeded* to ``--ids-out`` (one per line).
Exits 0 only when every created span was exported successfully; 1 otherwise; 2 on bad usage.
Every wait is bounded: the whole run is aborted (exit 3) after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import faulthandler
import gzip
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

RUN_ID_ATTR = "spanpipe.test.run_id"
BATCH = 512


def b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def to_otlp_json(spans: Sequence[ReadableSpan]) -> dict:
    """ExportTraceServiceRequest as OTLP/JSON: camelCase keys, integer enums, hex (not base64) ids."""
    msg = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for rs in msg.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = b64_to_hex(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if link.get(key):
                            link[key] = b64_to_hex(link[key])
    return msg


class OtlpJsonSpanExporter(SpanExporter):
    """Minimal OTLP/HTTP JSON exporter: POST application/json (optionally gzip) with bounded retries."""

    def __init__(self, url: str, timeout: float = 10.0, compression: str = "none", max_attempts: int = 5):
        self.url = url
        self.timeout = timeout
        self.compression = compression
        self.max_attempts = max_attempts

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = json.dumps(to_otlp_json(spans), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.compression == "gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        deadline = time.monotonic() + 4 * self.timeout
        for attempt in range(1, self.max_attempts + 1):
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            retry_after = 0.2 * attempt
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                    if resp.status == 200:
                        return SpanExportResult.SUCCESS
                    print(f"send_spans: http/json unexpected status {resp.status}", file=sys.stderr)
                    return SpanExportResult.FAILURE
            except urllib.error.HTTPError as err:
                detail = err.read()[:300]
                if err.code not in (429, 502, 503, 504):
                    print(f"send_spans: http/json export failed: {err.code} {detail!r}", file=sys.stderr)
                    return SpanExportResult.FAILURE
                try:
                    retry_after = min(float(err.headers.get("Retry-After", retry_after)), 5.0)
                except ValueError:
                    pass
                print(f"send_spans: http/json {err.code}, retrying (attempt {attempt})", file=sys.stderr)
            except (urllib.error.URLError, OSError) as err:
                print(f"send_spans: http/json transport error: {err}, retrying (attempt {attempt})", file=sys.stderr)
            if time.monotonic() + retry_after > deadline:
                break
            time.sleep(retry_after)
        print("send_spans: http/json export gave up", file=sys.stderr)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RecordingExporter(SpanExporter):
    """Delegates to the real exporter and remembers which span ids were acknowledged."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.lock = threading.Lock()
        self.ok_ids: list[str] = []
        self.failed_spans = 0
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter must not raise, but count it as a failure if it does
            print(f"send_spans: exporter raised {exc!r}", file=sys.stderr)
            result = SpanExportResult.FAILURE
        with self.lock:
            self.calls += 1
            if result == SpanExportResult.SUCCESS:
                self.ok_ids.extend(format(s.context.span_id, "016x") for s in spans)
            else:
                self.failed_spans += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter(protocol: str, endpoint: str, compression: str, timeout: float) -> SpanExporter:
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = endpoint.removeprefix("http://")
        comp = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=timeout, compression=comp)
    base = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
    url = base if base.rstrip("/").endswith("/v1/traces") else base.rstrip("/") + "/v1/traces"
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        comp = {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(compression, Compression.NoCompression)
        return OTLPSpanExporter(endpoint=url, timeout=timeout, compression=comp)
    if protocol == "http/json":
        return OtlpJsonSpanExporter(url, timeout=timeout, compression=compression)
    raise SystemExit(f"unknown protocol {protocol!r}")


MODELS = ["gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b", "mistral-large"]
TOOLS = ["web_search", "sql_query", "calculator", "fetch_url"]


def emit_trace(tracer: trace.Tracer, rng: random.Random, size: int, run_id: str, trace_no: int) -> int:
    """One agent invocation: a root AGENT span and ``size - 1`` children. Returns the number of spans created."""
    common = {RUN_ID_ATTR: run_id, "spanpipe.test.trace_no": trace_no}
    with tracer.start_as_current_span(
        "invoke_agent research_assistant",
        kind=SpanKind.SERVER,
        attributes={
            **common,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "research_assistant",
            "gen_ai.conversation.id": f"conv-{run_id}-{trace_no}",
            "mlflow.spanType": json.dumps("AGENT"),
            "mlflow.spanInputs": json.dumps({"question": f"question {trace_no}?"}),
        },
    ) as root:
        created = 1
        for i in range(size - 1):
            kind = i % 3
            if kind == 0:
                model = rng.choice(MODELS)
                attrs = {
                    **common,
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.usage.input_tokens": rng.randint(50, 4000),
                    "gen_ai.usage.output_tokens": rng.randint(10, 800),
                    "gen_ai.response.finish_reasons": ["stop"],
                    "mlflow.spanType": json.dumps("LLM"),
                }
                name, span_kind = f"chat {model}", SpanKind.CLIENT
            elif kind == 1:
                tool = rng.choice(TOOLS)
                attrs = {
                    **common,
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": f"call_{trace_no}_{i}",
                    "mlflow.spanType": json.dumps("TOOL"),
                }
                name, span_kind = f"execute_tool {tool}", SpanKind.INTERNAL
            else:
                attrs = {
                    **common,
                    "gen_ai.operation.name": "retrieve",
                    "db.system": "vector_store",
                    "mlflow.spanType": json.dumps("RETRIEVER"),
                    "mlflow.spanOutputs": json.dumps([{"doc_id": f"d{rng.randint(1, 999)}", "score": 0.87}]),
                }
                name, span_kind = "retrieve documents", SpanKind.CLIENT
            with tracer.start_as_current_span(name, kind=span_kind, attributes=attrs) as child:
                child.add_event("gen_ai.content.prompt", {"gen_ai.prompt": f"step {i} of trace {trace_no}"})
                if kind == 1 and (trace_no + i) % 7 == 0:
                    child.set_status(Status(StatusCode.ERROR, f"tool {attrs['gen_ai.tool.name']} timed out"))
                    child.set_attribute("error.type", "TimeoutError")
            created += 1
        if trace_no % 13 == 0:
            root.set_status(Status(StatusCode.ERROR, "agent failed to answer"))
        else:
            root.set_status(Status(StatusCode.OK))
    return created


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["grpc", "http/protobuf", "http/json"], required=True)
    ap.add_argument("--endpoint", required=True, help="grpc: 127.0.0.1:PORT; http: http://127.0.0.1:PORT")
    ap.add_argument("--spans", type=int, default=100, help="total number of spans to create")
    ap.add_argument("--trace-size", type=int, default=10, help="spans per trace (root + children)")
    ap.add_argument("--run-id", required=True, help=f"value of the {RUN_ID_ATTR} attribute on every span")
    ap.add_argument("--ids-out", required=True, help="file receiving the hex span id of every exported span")
    ap.add_argument("--compression", choices=["none", "gzip", "deflate"], default="none")
    ap.add_argument("--service-name", default="spanpipe-e2e-agent")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=120.0, help="hard bound for the whole run, seconds")
    args = ap.parse_args()
    if args.spans < 1 or args.trace_size < 1:
        ap.error("--spans and --trace-size must be positive")
    if args.protocol == "grpc" and args.compression == "deflate":
        ap.error("grpc supports gzip or none")

    # Hard bound: dump stacks and exit if anything hangs.
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    started = time.monotonic()

    recorder = RecordingExporter(make_exporter(args.protocol, args.endpoint, args.compression, timeout=10.0))
    processor = BatchSpanProcessor(
        recorder,
        max_queue_size=args.spans + BATCH,  # never drop: every created span must reach the exporter
        schedule_delay_millis=50,
        max_export_batch_size=BATCH,
        export_timeout_millis=30_000,
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": args.service_name, RUN_ID_ATTR: args.run_id}),
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("spanpipe.e2e.send_spans", "0.1.0")

    rng = random.Random(args.seed)
    created, trace_no = 0, 0
    while created < args.spans:
        created += emit_trace(tracer, rng, min(args.trace_size, args.spans - created), args.run_id, trace_no)
        trace_no += 1

    remaining_ms = max(1000, int((args.timeout - (time.monotonic() - started) - 5) * 1000))
    flushed = provider.force_flush(timeout_millis=remaining_ms)
    provider.shutdown()
    elapsed = time.monotonic() - started

    with open(args.ids_out, "w", encoding="ascii") as fh:
        fh.writelines(f"{sid}\n" for sid in recorder.ok_ids)

    ok = len(recorder.ok_ids)
    print(
        f"send_spans: protocol={args.protocol} created={created} exported={ok} failed={recorder.failed_spans} "
        f"traces={trace_no} requests={recorder.calls} flushed={flushed} elapsed={elapsed:.2f}s",
        file=sys.stderr,
    )
    faulthandler.cancel_dump_traceback_later()
    if not flushed or recorder.failed_spans or ok != created:
        print("send_spans: FAILED: not every span was exported", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
