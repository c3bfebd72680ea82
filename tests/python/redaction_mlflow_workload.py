#!/usr/bin/env python3
"""MLflow's tracing SDK sending a trace with an e-mail address and a 2 MB input through spanpipe's ``redaction``
processor, and a check that reads it back from MLflow.

``send``: exports over OTLP/HTTP (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) one AGENT trace whose root input is
``{"document": "From <e-mail>: <2 MB of text>", "email": "<e-mail>"}`` with an LLM child that gets the e-mail in
its prompt and returns it; writes the trace id to ``--expected``.

``check``: polls ``MlflowClient.get_trace`` (bounded by ``--timeout``) until the trace is complete, then checks:
the e-mail appears nowhere in the trace (masked to ``****``), the root input was truncated to at most
``--max-bytes`` and MLflow still parses it as JSON (a dict ending in the marker), span types are AGENT and LLM.
Prints a JSON report; exits 0 only when everything holds.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import time

EMAIL = "jane.doe@example.com"
MARKER = "...[truncated]"


def send(args: argparse.Namespace) -> int:
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = args.endpoint
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_SERVICE_NAME"] = "redaction-agent"
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri  # never contacted for OTLP export
    import mlflow
    from mlflow.entities import SpanType
    from mlflow.tracing.provider import provider

    @mlflow.trace(span_type=SpanType.LLM)
    def chat(prompt: str) -> str:
        return f"I will write to {EMAIL}"

    @mlflow.trace(name="agent", span_type=SpanType.AGENT)
    def agent(document: str, email: str) -> dict:
        answer = chat(f"summarise for {email}")
        trace_ids.append(mlflow.get_current_active_span().trace_id)
        return {"answer": answer}

    trace_ids: list[str] = []
    document = f"From {EMAIL}: " + ("lorem ipsum dolor sit amet " * 80_000)
    assert len(document) > 2_000_000
    agent(document, EMAIL)
    flushed = provider.get().force_flush(60_000)
    with open(args.expected, "w", encoding="utf-8") as fh:
        json.dump({"trace_ids": trace_ids}, fh)
    print(json.dumps({"traces": len(trace_ids), "flushed": flushed, "input_bytes": len(document)}))
    return 0 if flushed and all(trace_ids) else 1


def check_trace(trace, max_bytes: int) -> list[str]:
    problems = []
    spans = {s.name: s for s in trace.data.spans}
    if set(spans) != {"agent", "chat"}:
        return [f"span names {sorted(spans)}"]
    if spans["agent"].span_type != "AGENT" or spans["chat"].span_type != "LLM":
        problems.append(f"span types {spans['agent'].span_type!r}, {spans['chat'].span_type!r}")
    raw = spans["agent"].attributes.get("mlflow.spanInputs")
    inputs = spans["agent"].inputs
    if not isinstance(inputs, dict):
        problems.append(f"agent inputs are not parsed JSON: {type(inputs).__name__} {str(inputs)[:200]!r}")
    else:
        doc = inputs.get("document", "")
        if not (doc.startswith("From ****: lorem ipsum") and doc.endswith(MARKER)):
            problems.append(f"document not masked and truncated: {doc[:60]!r}...{doc[-40:]!r}")
        size = len(json.dumps(inputs, separators=(",", ":")).encode())
        if size > max_bytes:
            problems.append(f"truncated input is {size} bytes > {max_bytes}")
    if raw is not None:
        try:
            json.loads(raw if isinstance(raw, str) else json.dumps(raw))
        except ValueError as exc:
            problems.append(f"mlflow.spanInputs is not valid JSON: {exc}")
    if spans["chat"].inputs != {"prompt": "summarise for ****"}:
        problems.append(f"chat inputs {spans['chat'].inputs!r}")
    if spans["chat"].outputs != "I will write to ****":
        problems.append(f"chat outputs {spans['chat'].outputs!r}")
    dump = trace.to_json()
    if EMAIL in dump:
        problems.append("the e-mail address is still somewhere in the trace")
    if str(getattr(trace.info, "state", "")).split(".")[-1] != "OK":
        problems.append(f"state {trace.info.state!r}")
    return problems


def check(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    with open(args.expected, encoding="utf-8") as fh:
        spec = json.load(fh)
    client = MlflowClient(tracking_uri=args.tracking_uri)
    deadline = time.monotonic() + args.timeout
    while True:
        problems: dict[str, list[str]] = {}
        for tid in spec["trace_ids"]:
            try:
                trace = client.get_trace(tid)
            except Exception as exc:  # not there (yet)
                problems[tid] = [f"get_trace: {type(exc).__name__}: {str(exc)[:200]}"]
                continue
            if trace.info.experiment_id != args.experiment_id:
                problems[tid] = [f"experiment {trace.info.experiment_id} != {args.experiment_id}"]
            elif p := check_trace(trace, args.max_bytes):
                problems[tid] = p
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    print(json.dumps({"traces": len(spec["trace_ids"]), "problems": problems}, indent=1))
    return 0 if not problems and spec["trace_ids"] else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL (…/v1/traces)")
    c = sub.add_parser("check")
    c.add_argument("--experiment-id", required=True)
    c.add_argument("--max-bytes", type=int, required=True)
    for p in (s, c):
        p.add_argument("--tracking-uri", required=True)
        p.add_argument("--expected", required=True)
        p.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout + 60, exit=True)
    os.chdir(tempfile.mkdtemp(prefix="redaction-mlflow-"))  # MLflow must not write into the repository
    return send(args) if args.cmd == "send" else check(args)


if __name__ == "__main__":
    sys.exit(main())
