#!/usr/bin/env python3
"""MLflow's own tracing SDK (``@mlflow.trace``, ``mlflow.start_span``) exporting over OTLP, and a check that reads
the traces back with MLflow's client.

``send``: sets ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``..._PROTOCOL`` (so MLflow exports over OTLP instead of
to the tracking server), runs ``--traces`` agent invocations with AGENT / CHAIN / LLM / TOOL spans carrying inputs,
outputs and a trace tag, flushes, and writes what it produced (trace ids, span names, types, inputs, outputs) to
``--expected`` as JSON.

``check``: polls (bounded by ``--timeout``) ``MlflowClient.get_trace`` for every expected trace until each one is
complete and matches: same spans, span types, inputs, outputs, parent links, trace tag and state. Prints a JSON
report; exits 0 only when everything matches.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import time


def send(args: argparse.Namespace) -> int:
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = args.endpoint
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = args.protocol
    os.environ["OTEL_SERVICE_NAME"] = args.service_name
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri  # never contacted for OTLP export; keeps cwd clean
    import mlflow
    from mlflow.entities import SpanType
    from mlflow.tracing.provider import provider

    @mlflow.trace(span_type=SpanType.TOOL)
    def web_search(query: str) -> dict:
        return {"hits": [f"result for {query}"], "count": 1}

    @mlflow.trace(span_type=SpanType.LLM)
    def chat(prompt: str, model: str = "gpt-4o-mini") -> str:
        return f"answer({prompt})"

    @mlflow.trace(span_type=SpanType.CHAIN)
    def plan(question: str) -> list:
        return [f"search {question}", "summarize"]

    @mlflow.trace(name="agent", span_type=SpanType.AGENT)
    def agent(question: str, n: int) -> dict:
        steps = plan(question)
        found = web_search(steps[0])
        with mlflow.start_span(name="summarize", span_type=SpanType.LLM) as span:
            span.set_inputs({"messages": [{"role": "user", "content": question}], "n": n})
            text = chat(f"{question} with {found['count']} hits")
            span.set_outputs({"content": text})
        mlflow.update_current_trace(tags={"spanpipe.run": args.run_id, "team": "rust"})
        trace_ids.append(mlflow.get_current_active_span().trace_id)
        return {"answer": text, "n": n}

    trace_ids: list[str] = []
    for n in range(args.traces):
        agent(f"question {n}", n)
    expected = trace_ids
    flushed = provider.get().force_flush(30_000)
    spec = {
        "trace_ids": expected,
        "spans": {
            "agent": {"type": "AGENT", "parent": None},
            "plan": {"type": "CHAIN", "parent": "agent"},
            "web_search": {"type": "TOOL", "parent": "agent"},
            "summarize": {"type": "LLM", "parent": "agent"},
            "chat": {"type": "LLM", "parent": "summarize"},
        },
    }
    with open(args.expected, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    print(json.dumps({"traces": len(expected), "flushed": flushed}))
    return 0 if flushed and all(expected) else 1


def check_trace(trace, n: int, spec: dict, run_id: str) -> list[str]:
    problems = []
    spans = {s.name: s for s in trace.data.spans}
    if set(spans) != set(spec["spans"]):
        return [f"span names {sorted(spans)} != {sorted(spec['spans'])}"]
    by_id = {s.span_id: s.name for s in trace.data.spans}
    q = f"question {n}"
    want_io = {
        "agent": ({"question": q, "n": n}, {"answer": f"answer({q} with 1 hits)", "n": n}),
        "plan": ({"question": q}, [f"search {q}", "summarize"]),
        "web_search": ({"query": f"search {q}"}, {"hits": [f"result for search {q}"], "count": 1}),
        "summarize": ({"messages": [{"role": "user", "content": q}], "n": n}, {"content": f"answer({q} with 1 hits)"}),
        "chat": ({"prompt": f"{q} with 1 hits", "model": "gpt-4o-mini"}, f"answer({q} with 1 hits)"),
    }
    for name, want in spec["spans"].items():
        s = spans[name]
        if s.span_type != want["type"]:
            problems.append(f"{name}: span type {s.span_type!r} != {want['type']!r}")
        parent = by_id.get(s.parent_id) if s.parent_id else None
        if parent != want["parent"]:
            problems.append(f"{name}: parent {parent!r} != {want['parent']!r}")
        inputs, outputs = want_io[name]
        if s.inputs != inputs:
            problems.append(f"{name}: inputs {s.inputs!r} != {inputs!r}")
        if s.outputs != outputs:
            problems.append(f"{name}: outputs {s.outputs!r} != {outputs!r}")
    tags = trace.info.tags
    if tags.get("team") != "rust" or tags.get("spanpipe.run") != run_id:
        problems.append(f"tags {dict(tags)!r} lack team=rust / spanpipe.run={run_id}")
    state = getattr(trace.info, "state", None)
    if str(state).split(".")[-1] != "OK":
        problems.append(f"state {state!r} != OK")
    return problems


def check(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    with open(args.expected, encoding="utf-8") as fh:
        spec = json.load(fh)
    client = MlflowClient(tracking_uri=args.tracking_uri)
    deadline = time.monotonic() + args.timeout
    problems: dict[str, list[str]] = {}
    while True:
        problems = {}
        for n, tid in enumerate(spec["trace_ids"]):
            try:
                trace = client.get_trace(tid)
            except Exception as exc:  # not there (yet)
                problems[tid] = [f"get_trace: {type(exc).__name__}: {str(exc)[:200]}"]
                continue
            if trace.info.experiment_id != args.experiment_id:
                problems[tid] = [f"experiment {trace.info.experiment_id} != {args.experiment_id}"]
                continue
            if p := check_trace(trace, n, spec, args.run_id):
                problems[tid] = p
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    print(json.dumps({"traces": len(spec["trace_ids"]), "bad": len(problems), "problems": problems}, indent=1))
    return 0 if not problems else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--endpoint", required=True, help="OTLP traces endpoint (http URL with /v1/traces, or host:port)")
    s.add_argument("--protocol", choices=["http/protobuf", "grpc"], required=True)
    s.add_argument("--traces", type=int, default=5)
    s.add_argument("--service-name", default="mlflow-sdk-agent")
    c = sub.add_parser("check")
    c.add_argument("--experiment-id", required=True)
    for p in (s, c):
        p.add_argument("--tracking-uri", required=True)
        p.add_argument("--run-id", required=True)
        p.add_argument("--expected", required=True)
        p.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args()
    faulthandler.dump_traceback_later(args.timeout + 60, exit=True)
    os.chdir(tempfile.mkdtemp(prefix="mlflow-sdk-"))  # MLflow must not write into the repository
    return send(args) if args.cmd == "send" else check(args)


if __name__ == "__main__":
    sys.exit(main())
