#!/usr/bin/env python3
"""Real GenAI clients, offline, sending traces over OTLP/HTTP to spanpipe for tests/genai_metrics.rs.

* ``--client pydantic``: PydanticAI agents on ``TestModel`` (no network) with OpenInference's PydanticAI
  instrumentation (``OpenInferenceSpanProcessor``) and the OTel SDK's OTLP/HTTP exporter. Token counts recorded:
  PydanticAI's own ``RunResult.usage`` of each run.
* ``--client mlflow``: MLflow's tracing SDK (OTLP export via ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), LLM spans
  carrying ``mlflow.chat.tokenUsage`` under a CHAIN root. Token counts recorded: the usage set on each span.
* ``--client otel``: the OTel Python SDK with ``gen_ai.*`` attributes: chat spans with ``gen_ai.usage.*``, one
  model without a price, and agent spans that roll their children's usage up (MLflow counts only the agent's).
  Token counts recorded: what MLflow's rule counts (the topmost span with usage of each subtree).

Prints one JSON line: ``{"client": ..., "usage": [{"model", "input", "output"}, ...], "spans": N}``.
Token counts are random (``--seed``), so the test computes its expectations from this output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys


def otel_provider(endpoint: str, service: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    return tp, SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=10))


def run_pydantic(endpoint: str, rng: random.Random, runs: int) -> dict:
    from openinference.instrumentation.pydantic_ai import OpenInferenceSpanProcessor
    from opentelemetry import trace
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    tp, export = otel_provider(endpoint, "genai-pydantic")
    tp.add_span_processor(OpenInferenceSpanProcessor())
    tp.add_span_processor(export)
    trace.set_tracer_provider(tp)
    Agent.instrument_all()
    usage = []
    for i in range(runs):
        model = TestModel(model_name="pa-test-model", seed=rng.randrange(1000))
        agent = Agent(model, name=f"agent-{i % 2}")

        @agent.tool_plain
        def add(a: int, b: int) -> int:
            return a + b

        prompt = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randrange(1, 40)))
        result = agent.run_sync(prompt)
        u = result.usage
        usage.append({"model": "pa-test-model", "input": u.input_tokens, "output": u.output_tokens})
    tp.force_flush()
    tp.shutdown()
    return {"usage": usage}


def run_mlflow(endpoint: str, rng: random.Random, runs: int) -> dict:
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{endpoint}/v1/traces"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    import mlflow
    from mlflow.entities import SpanType

    usage = []
    for _ in range(runs):
        with mlflow.start_span(name="pipeline", span_type=SpanType.CHAIN):
            for _ in range(rng.randrange(1, 4)):
                model = rng.choice(["mlflow-chat-a", "mlflow-chat-b"])
                i, o = rng.randrange(1, 5000), rng.randrange(1, 2000)
                with mlflow.start_span(name="llm", span_type=SpanType.CHAT_MODEL) as s:
                    s.set_attribute("mlflow.llm.model", model)
                    s.set_attribute(
                        "mlflow.chat.tokenUsage",
                        {"input_tokens": i, "output_tokens": o, "total_tokens": i + o},
                    )
                usage.append({"model": model, "input": i, "output": o})
    mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
    from opentelemetry import trace

    tp = trace.get_tracer_provider()
    if hasattr(tp, "force_flush"):
        tp.force_flush()
    try:
        from mlflow.tracing.provider import provider

        p = provider.get()
        if hasattr(p, "force_flush"):
            p.force_flush()
    except Exception as e:  # noqa: BLE001 - best effort: the exporter also flushes at exit
        print(f"flush: {e}", file=sys.stderr)
    return {"usage": usage}


def run_otel(endpoint: str, rng: random.Random, runs: int) -> dict:
    from opentelemetry.trace import Status, StatusCode

    tp, export = otel_provider(endpoint, "genai-otel")
    tp.add_span_processor(export)
    tracer = tp.get_tracer("genai-otel-client")
    usage = []

    def chat(model: str, i: int, o: int, error: bool = False):
        with tracer.start_as_current_span(f"chat {model}") as s:
            s.set_attribute("gen_ai.operation.name", "chat")
            s.set_attribute("gen_ai.provider.name", "openai")
            s.set_attribute("gen_ai.request.model", model)
            s.set_attribute("gen_ai.usage.input_tokens", i)
            s.set_attribute("gen_ai.usage.output_tokens", o)
            s.set_attribute("server.address", "llm.internal")
            s.set_attribute("server.port", 443)
            if error:
                s.set_attribute("error.type", "timeout")
                s.set_status(Status(StatusCode.ERROR))

    for n in range(runs):
        if n % 3 == 0:
            # An agent that rolls its calls' usage up onto itself: MLflow counts only the agent's usage.
            calls = [(rng.randrange(1, 3000), rng.randrange(1, 900)) for _ in range(rng.randrange(2, 4))]
            ti, to = sum(c[0] for c in calls), sum(c[1] for c in calls)
            with tracer.start_as_current_span("invoke_agent planner") as agent:
                agent.set_attribute("gen_ai.operation.name", "invoke_agent")
                agent.set_attribute("gen_ai.agent.name", "planner")
                agent.set_attribute("gen_ai.provider.name", "openai")
                agent.set_attribute("gen_ai.request.model", "otel-gpt")
                agent.set_attribute("gen_ai.usage.input_tokens", ti)
                agent.set_attribute("gen_ai.usage.output_tokens", to)
                with tracer.start_as_current_span("execute_tool lookup") as tool:
                    tool.set_attribute("gen_ai.operation.name", "execute_tool")
                    tool.set_attribute("gen_ai.tool.name", "lookup")
                    for i, o in calls:
                        chat("otel-gpt", i, o)
            usage.append({"model": "otel-gpt", "input": ti, "output": to})
        else:
            with tracer.start_as_current_span("request"):
                for _ in range(rng.randrange(1, 3)):
                    model = rng.choice(["otel-gpt", "mystery-model"])
                    i, o = rng.randrange(1, 3000), rng.randrange(1, 900)
                    chat(model, i, o, error=rng.random() < 0.2)
                    usage.append({"model": model, "input": i, "output": o})
    tp.force_flush()
    tp.shutdown()
    return {"usage": usage}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", choices=["pydantic", "mlflow", "otel"], required=True)
    ap.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT (OTLP/HTTP)")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    run = {"pydantic": run_pydantic, "mlflow": run_mlflow, "otel": run_otel}[args.client]
    out = run(args.endpoint, rng, args.runs)
    out["client"] = args.client
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
