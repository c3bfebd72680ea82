#!/usr/bin/env python3
"""Spans with chosen names, kinds, statuses, attributes and resources, sent by the real OpenTelemetry Python SDK,
for the ``attributes`` / ``resource`` / ``filter`` processor suites.

``--spec`` is a JSON file::

    {"protocol": "http" | "grpc", "endpoint": "http://127.0.0.1:4318" | "127.0.0.1:4317",
     "headers": {"x-tenant": "acme"},
     "resources": [
        {"attributes": {"service.name": "agent"},
         "traces": [[{"name": "root", "kind": "SERVER", "status": "ERROR", "attributes": {"k": 1}}, ...], ...]}]}

Each trace is a list of spans; the first is the root, the others are its children. Every resource gets its own
``TracerProvider`` whose spans are exported in one request at the end (one ``BatchSpanProcessor`` flush).
``--out`` receives a JSON list of ``{"name", "trace_id", "span_id"}`` (hex). Exits 0 only when every span was
acknowledged.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

KINDS = {
    "INTERNAL": SpanKind.INTERNAL,
    "SERVER": SpanKind.SERVER,
    "CLIENT": SpanKind.CLIENT,
    "PRODUCER": SpanKind.PRODUCER,
    "CONSUMER": SpanKind.CONSUMER,
}
STATUSES = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR, None: None}


def exporter_class(protocol: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

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

    return Counting


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)

    protocol = spec.get("protocol", "http")
    endpoint = spec["endpoint"]
    if protocol == "http":
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    cls = exporter_class(protocol)
    headers = spec.get("headers") or None
    sent = []
    total = 0
    for res in spec["resources"]:
        kwargs = {"endpoint": endpoint, "headers": headers, "timeout": 10}
        if protocol == "grpc":
            kwargs["insecure"] = True
        provider = TracerProvider(resource=Resource.create(res.get("attributes", {})))
        provider.add_span_processor(
            BatchSpanProcessor(cls(**kwargs), max_queue_size=10_000, max_export_batch_size=10_000, schedule_delay_millis=60_000)
        )
        tracer = provider.get_tracer("transform-e2e", "1.0")
        for spans in res["traces"]:
            root_spec, children = spans[0], spans[1:]
            root = tracer.start_span(root_spec["name"], kind=KINDS[root_spec.get("kind", "INTERNAL")])
            ctx = trace.set_span_in_context(root)
            started = [(root, root_spec)]
            for child in children:
                span = tracer.start_span(child["name"], context=ctx, kind=KINDS[child.get("kind", "INTERNAL")])
                started.append((span, child))
            for span, s in reversed(started):
                for k, v in (s.get("attributes") or {}).items():
                    span.set_attribute(k, v)
                code = STATUSES[s.get("status")]
                if code is not None:
                    span.set_status(Status(code))
                c = span.get_span_context()
                sent.append(
                    {"name": s["name"], "trace_id": format(c.trace_id, "032x"), "span_id": format(c.span_id, "016x")}
                )
                span.end()
                total += 1
        provider.force_flush(30_000)
        provider.shutdown()

    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(sent, f)
    if cls.exported != total or cls.failed:
        print(f"exported {cls.exported} of {total} spans ({cls.failed} failed)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
