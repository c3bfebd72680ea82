#!/usr/bin/env python3
"""MLflow's own tracing SDK with its span-duration metric turned on, both exported to one OTLP/HTTP endpoint.

Sets ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (MLflow then exports spans over OTLP) and
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` (MLflow then records ``mlflow.trace.span.duration`` for every span and
exports it), both ``http/protobuf``, and runs ``--traces`` agent invocations: an AGENT root with CHAIN, TOOL and
LLM children (nested LLM inside a CHAIN), tagged with ``mlflow.update_current_trace`` half-way, with durations
spread over the histogram's buckets, some TOOL/LLM spans failing and some whole traces failing (root ERROR).
Flushes traces and metrics, then prints one JSON line: ``{"spans": N, "traces": T, "flushed": bool}``.

Needs ``opentelemetry-sdk<1.43``: with newer SDKs MLflow drops the root span of a tagged trace.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT (OTLP/HTTP receiver)")
    ap.add_argument("--traces", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    work = tempfile.mkdtemp(prefix="spanmetrics-mlflow-")
    os.chdir(work)  # MLflow must not write into the repository
    base = args.endpoint.rstrip("/")
    os.environ.update(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{base}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{base}/v1/metrics",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_SERVICE_NAME": "spanmetrics-parity",
            "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
        }
    )
    import mlflow
    from mlflow.entities import SpanType
    from mlflow.tracing.provider import provider
    from opentelemetry import metrics

    rng = random.Random(args.seed)
    # Durations (ms) that land in different buckets, including exact bucket bounds' neighbourhoods.
    choices = [0, 1, 3, 7, 12, 30, 60, 80]
    spans = 0

    def work_for() -> None:
        time.sleep(rng.choice(choices) / 1000.0)

    @mlflow.trace(span_type=SpanType.TOOL)
    def tool(n: int) -> str:
        nonlocal spans
        spans += 1
        work_for()
        if n % 4 == 1:
            raise RuntimeError("tool timed out")
        return f"tool {n}"

    @mlflow.trace(span_type=SpanType.LLM)
    def llm(prompt: str, fail: bool) -> str:
        nonlocal spans
        spans += 1
        work_for()
        if fail:
            raise ValueError("rate limited")
        return f"answer({prompt})"

    @mlflow.trace(span_type=SpanType.CHAIN)
    def chain(n: int) -> str:
        nonlocal spans
        spans += 1
        work_for()
        try:
            return llm(f"step {n}", fail=n % 5 == 3)
        except ValueError:
            return "fallback"

    @mlflow.trace(name="agent", span_type=SpanType.AGENT)
    def agent(n: int) -> str:
        nonlocal spans
        spans += 1
        out = chain(n)
        mlflow.update_current_trace(tags={"team": ["rust", "go"][n % 2], "env": "staging"})
        try:
            out += tool(n)
        except RuntimeError:
            pass
        work_for()
        if n % 6 == 5:
            raise KeyError("agent gave up")
        return out

    for n in range(args.traces):
        try:
            agent(n)
        except KeyError:
            pass
    flushed = provider.get().force_flush(30_000)
    meter_provider = metrics.get_meter_provider()
    metrics_flushed = bool(meter_provider.force_flush(30_000)) if hasattr(meter_provider, "force_flush") else False
    print(json.dumps({"spans": spans, "traces": args.traces, "flushed": bool(flushed and metrics_flushed)}))
    faulthandler.cancel_dump_traceback_later()
    return 0 if flushed and metrics_flushed else 1


if __name__ == "__main__":
    sys.exit(main())
