#!/usr/bin/env python3
"""Export a few spans once with the real OpenTelemetry SDK exporters over TLS / mTLS and with headers.

Used by tests/receiver_security.rs. Options map one to one to the SDK exporters' own TLS and header options:

* ``--protocol grpc``: ``OTLPSpanExporter(endpoint, insecure=False, credentials=ssl_channel_credentials(...),
  headers=...)``
* ``--protocol http``: ``OTLPSpanExporter(endpoint=https://.../v1/traces, certificate_file, client_certificate_file,
  client_key_file, headers=...)``

Prints one JSON line: ``{"result": "SUCCESS"|"FAILURE", "ids": [hex span ids]}``; exit 0 on SUCCESS, 1 otherwise.
The exporter's timeout bounds each attempt; the whole run is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class Recording(SpanExporter):
    """Wraps the real exporter and remembers the outcome of each export call."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[tuple[SpanExportResult, list[str]]] = []

    def export(self, spans):
        res = self.inner.export(spans)
        self.results.append((res, [format(s.context.span_id, "016x") for s in spans]))
        return res

    def shutdown(self):
        self.inner.shutdown()


def read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_exporter(a: argparse.Namespace) -> SpanExporter:
    headers = dict(h.split("=", 1) for h in a.header)
    if a.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if a.plaintext:
            return OTLPSpanExporter(
                endpoint=a.endpoint, insecure=True, headers=headers or None, timeout=a.attempt_timeout
            )
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(a.ca), private_key=read(a.client_key), certificate_chain=read(a.client_cert)
        )
        return OTLPSpanExporter(
            endpoint=a.endpoint, insecure=False, credentials=creds, headers=headers or None, timeout=a.attempt_timeout
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=a.endpoint.rstrip("/") + "/v1/traces",
        certificate_file=a.ca or True,
        client_certificate_file=a.client_cert,
        client_key_file=a.client_key,
        headers=headers or None,
        timeout=a.attempt_timeout,
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--endpoint", required=True, help="grpc: localhost:PORT; http: https://localhost:PORT")
    ap.add_argument("--ca")
    ap.add_argument("--client-cert")
    ap.add_argument("--client-key")
    ap.add_argument("--plaintext", action="store_true", help="grpc: no TLS (the SDK's insecure=True)")
    ap.add_argument("--header", action="append", default=[], help="name=value (repeatable)")
    ap.add_argument("--spans", type=int, default=5)
    ap.add_argument("--attempt-timeout", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    faulthandler.dump_traceback_later(a.timeout, exit=True)
    # requests lets these variables override a session's `verify` (where the SDK puts certificate_file).
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(var, None)

    exporter = Recording(make_exporter(a))
    provider = TracerProvider(resource=Resource.create({"service.name": "secure-send"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("secure_send")
    with tracer.start_as_current_span("root"):
        for i in range(a.spans - 1):
            with tracer.start_as_current_span(f"child-{i}"):
                pass
    provider.shutdown()
    ok = [sid for res, ids in exporter.results if res == SpanExportResult.SUCCESS for sid in ids]
    result = "SUCCESS" if len(ok) == a.spans else "FAILURE"
    print(json.dumps({"result": result, "ids": ok}), flush=True)
    return 0 if result == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
