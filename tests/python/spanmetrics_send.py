#!/usr/bin/env python3
"""Spans for the ``mlflow_spanmetrics`` connector, from the real OpenTelemetry Python SDK, and the histogram
points the connector must derive from them.

Every trace has an AGENT root (``mlflow.spanType``, tag ``mlflow.traceTag.team``) and children whose span type
comes from different places: ``mlflow.spanType``, ``gen_ai.operation.name``, ``openinference.span.kind``,
``traceloop.span.kind``, ``mlflow.spanType = UNKNOWN`` plus ``gen_ai.operation.name``, and nothing at all.
Durations are set explicitly (``start_time``/``end_time``) so every bucket, and values on bucket bounds, are
hit; some spans fail. ``--orphans`` more spans belong to traces whose root is never sent: the connector records
them untagged once ``tags_wait`` is over. The resource has ``env`` (a tag source) and ``mlflow.experimentId``.

Exports over OTLP/HTTP protobuf (``--endpoint http://127.0.0.1:PORT``) and writes ``--expected``: a JSON list of
``{"labels": {...Prometheus label names...}, "count": n, "sum": ms, "buckets": {le: cumulative}}``.
Exits 0 only when every span was exported.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import random
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

BOUNDS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
# Milliseconds; includes exact bounds (upper bounds are inclusive) and values past the last bound.
DURATIONS = [0, 0.4, 5, 5.5, 9.99, 10, 24, 30, 75, 99.5, 250, 600, 1000, 2400, 4999, 7500, 12000]
EXPERIMENT = "42"
ENV = "e2e"

# (attributes, the span type the connector must derive)
CHILDREN = [
    ({"mlflow.spanType": json.dumps("LLM")}, "LLM"),
    ({"gen_ai.operation.name": "chat"}, "CHAT_MODEL"),
    ({"openinference.span.kind": "RETRIEVER"}, "RETRIEVER"),
    ({"traceloop.span.kind": "tool"}, "TOOL"),
    ({"mlflow.spanType": json.dumps("UNKNOWN"), "gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
    ({"gen_ai.operation.name": "retrieve"}, "UNKNOWN"),
]


class Counting(OTLPSpanExporter):
    """The SDK's exporter, counting what was acknowledged."""

    exported = 0
    failed = 0

    def export(self, spans):
        result = super().export(spans)
        if result == SpanExportResult.SUCCESS:
            Counting.exported += len(spans)
        else:
            Counting.failed += len(spans)
        return result


def bucket_key(value: float) -> dict:
    return {str(b): 1 if value <= b else 0 for b in BOUNDS} | {"+Inf": 1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--traces", type=int, default=30)
    ap.add_argument("--orphans", type=int, default=5)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    rng = random.Random(args.seed)

    exporter = Counting(endpoint=args.endpoint.rstrip("/") + "/v1/traces", timeout=10)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "spanmetrics-e2e", "env": ENV, "mlflow.experimentId": EXPERIMENT}
        )
    )
    # Small export batches: a trace's root usually arrives in a later request than its children.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=4, schedule_delay_millis=20))
    tracer = provider.get_tracer("spanmetrics.e2e")

    expected: dict[tuple, dict] = {}

    def expect(labels: dict, ms: float) -> None:
        key = tuple(sorted(labels.items()))
        e = expected.setdefault(key, {"labels": labels, "count": 0, "sum": 0.0, "buckets": {}})
        e["count"] += 1
        e["sum"] += ms
        for le, n in bucket_key(ms).items():
            e["buckets"][le] = e["buckets"].get(le, 0) + n

    base = time.time_ns() - 3600 * 10**9
    created = 0
    for t in range(args.traces):
        team = ["rust", "go", "python"][t % 3]
        start = base + t * 10**9
        root_ms = rng.choice(DURATIONS)
        root_status = StatusCode.ERROR if t % 7 == 3 else StatusCode.OK
        root = tracer.start_span(
            "agent",
            start_time=start,
            attributes={"mlflow.spanType": json.dumps("AGENT"), "mlflow.traceTag.team": team},
        )
        tags = {"tags_team": team, "tags_env": ENV}
        ctx = trace.set_span_in_context(root)
        for i, (attrs, span_type) in enumerate(CHILDREN):
            ms = rng.choice(DURATIONS)
            status = StatusCode.ERROR if (t + i) % 5 == 0 else rng.choice([StatusCode.OK, StatusCode.UNSET])
            child = tracer.start_span(f"child {i}", context=ctx, start_time=start, attributes=attrs)
            if status != StatusCode.UNSET:
                child.set_status(Status(status))
            child.end(end_time=start + round(ms * 1e6))
            created += 1
            labels = {"root": "false", "span_type": span_type, "span_status": status.name, "experiment_id": EXPERIMENT}
            expect(labels | tags | {"metadata_mlflow_trace_schema_version": "3"}, round(ms * 1e6) / 1e6)
        root.set_status(Status(root_status))
        root.end(end_time=start + round(root_ms * 1e6))
        created += 1
        labels = {"root": "true", "span_type": "AGENT", "span_status": root_status.name, "experiment_id": EXPERIMENT}
        expect(labels | tags | {"metadata_mlflow_trace_schema_version": "3"}, round(root_ms * 1e6) / 1e6)

    for o in range(args.orphans):
        parent = SpanContext(
            trace_id=rng.getrandbits(128) | 1,
            span_id=rng.getrandbits(64) | 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(parent))
        ms = rng.choice(DURATIONS)
        start = base + (args.traces + o) * 10**9
        span = tracer.start_span("orphan", context=ctx, start_time=start, attributes={"mlflow.spanType": '"TOOL"'})
        span.end(end_time=start + round(ms * 1e6))
        created += 1
        labels = {"root": "false", "span_type": "TOOL", "span_status": "UNSET", "experiment_id": EXPERIMENT}
        expect(labels | {"metadata_mlflow_trace_schema_version": "3"}, round(ms * 1e6) / 1e6)

    flushed = provider.force_flush(30_000)
    provider.shutdown()
    with open(args.expected, "w", encoding="utf-8") as fh:
        json.dump(list(expected.values()), fh)
    print(f"spanmetrics_send: created={created} exported={Counting.exported} failed={Counting.failed}", file=sys.stderr)
    faulthandler.cancel_dump_traceback_later()
    return 0 if flushed and Counting.exported == created and not Counting.failed else 1


if __name__ == "__main__":
    sys.exit(main())
