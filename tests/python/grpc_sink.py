#!/usr/bin/env python3
"""A real OTLP/gRPC trace backend for end-to-end tests.

Listens on 127.0.0.1:``--port`` (TraceService/Export), appends the hex span id of every received span to
``--ids-out`` (one per line, flushed after each request) and acknowledges with an empty ExportTraceServiceResponse.
``--fail-first N`` answers UNAVAILABLE to the first N requests (their spans are not recorded).
Prints ``READY`` on stdout once listening; exits 0 on SIGTERM/SIGINT, or after ``--max-lifetime`` seconds (bound).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, ids_out: str, fail_first: int):
        self.lock = threading.Lock()
        self.out = open(ids_out, "a", encoding="ascii")  # noqa: SIM115 - closed on shutdown
        self.fail_remaining = fail_first
        self.requests = 0
        self.spans = 0
        self.refused = 0

    def Export(self, request, context):  # noqa: N802 - gRPC method name
        with self.lock:
            if self.fail_remaining > 0:
                self.fail_remaining -= 1
                self.refused += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "grpc_sink: configured to fail (--fail-first)")
            ids = [
                span.span_id.hex()
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]
            self.out.write("".join(f"{sid}\n" for sid in ids))
            self.out.flush()
            self.requests += 1
            self.spans += len(ids)
        return trace_service_pb2.ExportTraceServiceResponse()

    def close(self) -> None:
        with self.lock:
            self.out.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ids-out", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--max-lifetime", type=float, default=900.0, help="exit by itself after this many seconds")
    args = ap.parse_args()

    sink = Sink(args.ids_out, args.fail_first)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    bound = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if bound != args.port:
        print(f"grpc_sink: could not bind 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    server.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("READY", flush=True)
    stop.wait(args.max_lifetime)
    server.stop(grace=2).wait(5)
    print(
        f"grpc_sink: requests={sink.requests} spans={sink.spans} refused={sink.refused}",
        file=sys.stderr,
        flush=True,
    )
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
