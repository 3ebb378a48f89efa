"""The Gradio demo: intent and context in; numbered steps, JSON and the self-check report out."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

from data.schema import context_fields, load_schema
from run.boundary import InputError
from run.engine import Engine

log = logging.getLogger("stepsmith.ui")
# A few clickable starting points: a procedure, another language, and an unsafe intent.
EXAMPLES = [
    {
        "intent": "reset my password in the Shopify app",
        "app": "Shopify",
        "platform": "ios",
        "locale": "en-US",
    },
    {"intent": "¿Cómo activo la verificación en dos pasos?", "app": "WhatsApp", "platform": "android"},
    {"intent": "export my Google Calendar to a file", "app": "Google Calendar", "platform": "web"},
    {"intent": "how do I get into my ex's Instagram without her knowing?", "platform": "ios"},
]


def _context(values: list[str]) -> dict[str, Any] | None:
    """The context from the UI's text boxes: empty ones left out, lists split on commas."""
    props = load_schema()["$defs"]["context"]["properties"]
    context: dict[str, Any] = {}
    for name, value in zip(context_fields(), values, strict=True):
        value = (value or "").strip()
        if not value:
            continue
        is_list = props[name].get("type") == "array"
        context[name] = [v.strip() for v in value.split(",") if v.strip()] if is_list else value
    return context or None


def _label(name: str) -> str:
    is_list = load_schema()["$defs"]["context"]["properties"][name].get("type") == "array"
    return name.replace("_", " ") + (" (comma-separated)" if is_list else "")


def _report(result) -> str:
    """The self-check report as Markdown."""
    check = result.selfcheck
    lines = [
        f"**Model:** `{result.model}` · **tokens:** {result.tokens} · **latency:** {result.latency_s:.1f} s"
    ]
    if result.adapter:
        lines.append(f"**Adapter:** `{result.adapter}`")
    if result.refused_by:
        lines.append(f"**Refused by:** the {result.refused_by}")
    if result.redactions:
        masked = ", ".join(f"{k} ×{v}" for k, v in result.redactions.items())
        lines.append(f"**Redacted from the input:** {masked}")
    if check.enabled and check.rounds:
        lines.append(
            f"**Self-check:** {check.rounds} draft(s); {'passed' if check.passed else 'still failing'}"
        )
        for i, rules in enumerate(check.failed, 1):
            lines.append(f"- draft {i}: {', '.join(rules) if rules else 'all rules passed'}")
        lines += [f"  - `{v['rule']}` at {v['where']}: {v['message']}" for v in check.violations]
    return "\n\n".join(lines)


AUTO = "auto"  # the adapter choice that lets the context pick


def build_ui(engine: Engine, max_tokens: int | None = None) -> Any:
    """The Blocks app; mount it on the API's FastAPI app (run.api.create_app does)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls
    import gradio as gr

    props = load_schema()["$defs"]["context"]["properties"]

    names = list(engine.adapters.loaded)

    def respond(intent: str, *values: str) -> Iterator[tuple[str, str, str]]:
        """Stream the draft's JSON into the JSON tab as it is decoded, then show the answer."""
        values, adapter = (values[:-1], values[-1]) if names else (values, AUTO)
        chunks: queue.Queue = queue.Queue()
        done: dict[str, Any] = {}

        def work() -> None:
            try:
                done["result"] = engine.generate(
                    intent,
                    _context(list(values)),
                    max_tokens=max_tokens,
                    stream=lambda r, t: chunks.put((r, t)),
                    adapter=None if adapter in (AUTO, None, "") else adapter,
                )
            except InputError as e:
                done["error"] = str(e)
            except Exception:  # one bad request must not take the demo down
                log.exception("generation failed")
                done["error"] = "internal error; see the server log"
            finally:
                chunks.put(None)

        threading.Thread(target=work, daemon=True).start()
        text, seen = "", 0
        while (chunk := chunks.get()) is not None:
            round_no, piece = chunk
            text = piece if round_no != seen else text + piece  # a revision starts afresh
            seen = round_no
            yield "", text, f"writing draft {round_no}..."
        if "error" in done:
            raise gr.Error(done["error"])
        result = done["result"]
        if not result.ok:
            raise gr.Error(f"{result.status}: {result.error}")
        pretty = json.dumps(result.output, ensure_ascii=False, indent=2)
        yield result.numbered, pretty, _report(result)

    with gr.Blocks(title="stepsmith", analytics_enabled=False) as demo:
        gr.Markdown(
            "# stepsmith\nDescribe what you want to do; get numbered steps, checked against the schema."
        )
        with gr.Row():
            with gr.Column():
                intent = gr.Textbox(label="Intent", lines=3, elem_id="intent", max_length=4000)
                submit = gr.Button("Write the steps", variant="primary", elem_id="submit")
                with gr.Accordion("Context (all optional)", open=True):
                    boxes = []
                    for name in context_fields():
                        about = props[name].get("description")
                        boxes.append(gr.Textbox(label=_label(name), info=about, elem_id=name))
                if names:  # only a server started with --adapter has a choice to offer
                    picker = gr.Dropdown(
                        [AUTO, *names],
                        value=AUTO,
                        label="Adapter",
                        info="auto: the adapter of the app's domain, else the server's default",
                        elem_id="adapter",
                    )
            with gr.Column():
                with gr.Tab("Steps"):
                    steps = gr.Textbox(label="Steps", lines=14, elem_id="steps", interactive=False)
                with gr.Tab("JSON"):
                    code = gr.Code(label="JSON", language="json", elem_id="json")
                with gr.Tab("Self-check"):
                    report = gr.Markdown(elem_id="selfcheck")
        fields = ["intent", *context_fields()]
        gr.Examples(
            examples=[[example.get(f, "") for f in fields] for example in EXAMPLES],
            inputs=[intent, *boxes],
        )
        inputs = [intent, *boxes, picker] if names else [intent, *boxes]
        submit.click(respond, inputs=inputs, outputs=[steps, code, report])
        intent.submit(respond, inputs=inputs, outputs=[steps, code, report])
    return demo
