#!/usr/bin/env python3
"""Spans for the ``spanmetrics`` connector from the real OpenTelemetry Python SDK, and what it must count.

Two services (two tracer providers with their own resources) send SERVER and CLIENT spans with several names,
some with an ERROR or OK status, each with a set duration. Exports over OTLP/HTTP protobuf (``--endpoint
http://127.0.0.1:PORT``) and writes ``--expected``: a JSON list of ``{"labels": {service_name, span_name,
span_kind, status_code}, "count": n}``. Exits 0 only when every span was exported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

KINDS = {SpanKind.SERVER: "SPAN_KIND_SERVER", SpanKind.CLIENT: "SPAN_KIND_CLIENT"}
CODES = {StatusCode.UNSET: "STATUS_CODE_UNSET", StatusCode.OK: "STATUS_CODE_OK", StatusCode.ERROR: "STATUS_CODE_ERROR"}
# (span name, kind, status, duration ms)
PLAN = [
    ("GET /cart", SpanKind.SERVER, StatusCode.UNSET, 12),
    ("GET /cart", SpanKind.SERVER, StatusCode.ERROR, 250),
    ("POST /checkout", SpanKind.SERVER, StatusCode.OK, 90),
    ("redis GET", SpanKind.CLIENT, StatusCode.UNSET, 1),
]


class Counting(OTLPSpanExporter):
    exported = 0

    def export(self, spans):
        result = super().export(spans)
        if result == SpanExportResult.SUCCESS:
            Counting.exported += len(spans)
        return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--expected", required=True)
    args = ap.parse_args()
    expected: dict[tuple, int] = {}
    providers = []
    sent = 0
    for service, rounds in (("cart", args.rounds), ("checkout", args.rounds * 2)):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "service.instance.id": f"{service}-1"}))
        provider.add_span_processor(BatchSpanProcessor(Counting(endpoint=f"{args.endpoint}/v1/traces")))
        providers.append(provider)
        tracer = provider.get_tracer("spanmetrics-e2e")
        for _ in range(rounds):
            for name, kind, code, ms in PLAN:
                start = time.time_ns()
                span = tracer.start_span(name, kind=kind, start_time=start)
                if code != StatusCode.UNSET:
                    span.set_status(Status(code))
                span.end(end_time=start + ms * 1_000_000)
                key = (service, name, KINDS[kind], CODES[code])
                expected[key] = expected.get(key, 0) + 1
                sent += 1
    for p in providers:
        p.force_flush()
        p.shutdown()
    with open(args.expected, "w") as f:
        json.dump(
            [
                {"labels": {"service_name": k[0], "span_name": k[1], "span_kind": k[2], "status_code": k[3]}, "count": n}
                for k, n in sorted(expected.items())
            ],
            f,
        )
    if Counting.exported != sent:
        print(f"exported {Counting.exported} of {sent} spans", file=sys.stderr)
        return 1
    print(f"sent {sent} spans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
