"""OpenAI-compatible routes: POST /v1/chat/completions (streaming too) and GET /v1/models.

An OpenAI client (the `openai` SDK, LangChain, LiteLLM) talks to stepsmith as to any local
server. The request is read this way:

- the **intent** is the last `user` message (text, or text parts); earlier turns and `system`
  or `developer` messages are not read (the model was trained with its own system prompt), and
  the response says which it skipped, in `stepsmith.ignored`;
- the **context** is `context` (send it with `extra_body={"context": {...}}`: the same object
  as /v1/procedures takes) or `metadata` (OpenAI's string map: one key per context field,
  `permissions` comma-separated); not both;
- `response_format` may be `text`, `json_object`, or `json_schema` with stepsmith's output
  schema (GET /v1/schema returns it); any other schema is a 422, since every answer follows
  this one;
- `max_tokens` (or `max_completion_tokens`) is the budget per draft, `temperature` the
  sampling temperature (0 is greedy); other sampling fields are rejected by name.

The answer is the procedure JSON as the message content, with stepsmith's report (refusals,
self-check, redactions) under `stepsmith`. With `stream: true` it comes as server-sent events in
OpenAI's chunk format; the content is the first draft, sent as the decoder settles it, with PII
masked item by item: a revision would rewrite text already sent, so the self-check reports on
that draft but does not revise it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from data.redact import redact, region_of
from data.schema import definition, load_schema
from run.boundary import InputError
from run.engine import Engine, Result
from run.queue import TicketError, Tickets

# The HTTP status of each failed Result, on this route and on /v1/procedures (run/api.py).
STATUS = {"timeout": 504, "budget": 422, "invalid": 502, "busy": 503}


def retry_headers(result: Result) -> dict[str, str] | None:
    """For a request turned away under load (status busy): Retry-After, and the ticket that
    keeps its place when the retry brings it back in `Stepsmith-Ticket`. For one whose ticket
    was not honoured: why, in `Stepsmith-Ticket-Ignored`. Else None."""
    headers = {}
    if result.retry_after_s:
        headers["Retry-After"] = str(result.retry_after_s)
    if result.ticket:
        headers[Tickets.HEADER] = result.ticket
    if result.ticket_ignored:
        headers[f"{Tickets.HEADER}-Ignored"] = result.ticket_ignored
    return headers or None


# The header a retry sends its ticket back in (optional: without it, a request is a new arrival).
TicketHeader = Annotated[
    str | None,
    Header(alias=Tickets.HEADER, description="the ticket of an earlier 503, to keep that request's place"),
]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One chat message; only text content is read."""

    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: not read
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completion request that stepsmith reads; others are a 422."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    metadata: dict[str, str] | None = None
    context: dict[str, Any] | None = None
    user: str | None = None  # an end-user id, as in OpenAI's API; not stored


class RequestError(Exception):
    """A request stepsmith cannot answer as asked: its HTTP status, the field, the message."""

    def __init__(self, status: int, param: str | None, message: str, code: str = "invalid_request"):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(message: str, param: str | None = None, code: str = "invalid_request") -> dict[str, Any]:
    """The project's one-line `message`, plus OpenAI's `error` object that its clients read."""
    kind = "invalid_request_error" if code in ("invalid_request", "model_not_found") else "server_error"
    return {"message": message, "error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str = "invalid_request"):
    return JSONResponse(status_code=status, content=error_body(message, param, code))


def model_id(engine: Engine) -> str:
    """The id a request names for the model alone: the GGUF's file name without .gguf."""
    return engine.model_path.stem


def model_ids(engine: Engine) -> list[str]:
    """What /v1/models lists: the model alone, then `<model>:<adapter>` for each adapter."""
    return [model_id(engine)] + [f"{model_id(engine)}:{name}" for name in engine.adapters.loaded]


def read_model(engine: Engine, name: str) -> str | None:
    """The adapter a request's `model` names: `<model>:<adapter>`, or None for `<model>` itself
    (the adapter of the context's domain, else the server's default)."""
    base, _, adapter = name.partition(":")
    if base == model_id(engine) and (not adapter or adapter in engine.adapters.loaded):
        return adapter or None
    raise RequestError(
        404,
        "model",
        f"model: {name!r} is not loaded; GET /v1/models lists {', '.join(model_ids(engine))}",
        "model_not_found",
    )


def read_intent(messages: list[Message]) -> tuple[str, list[str]]:
    """The last user message's text, and the messages not read (as `messages[i] (role)`)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise RequestError(422, "messages", "messages: no user message; the last one is the intent")
    last = users[-1]
    ignored = [f"messages[{i}] ({m.role})" for i, m in enumerate(messages) if i != last]
    return messages[last].text(), ignored


def read_context(request: ChatRequest) -> dict[str, Any] | None:
    """The context from `context` or from `metadata` (permissions comma-separated)."""
    if request.context is not None and request.metadata is not None:
        raise RequestError(422, "metadata", "context and metadata: give the context in one of them")
    if request.context is not None:
        return request.context or None
    if not request.metadata:
        return None
    known = set(load_schema()["$defs"]["context"]["properties"])
    unknown = sorted(set(request.metadata) - known)
    if unknown:
        raise RequestError(
            422,
            f"metadata.{unknown[0]}",
            f"metadata.{unknown[0]}: not a context field; known: {', '.join(sorted(known))}",
        )
    context: dict[str, Any] = dict(request.metadata)
    if "permissions" in context:
        context["permissions"] = [p.strip() for p in context["permissions"].split(",") if p.strip()]
    return context


def check_format(response_format: ResponseFormat | None) -> None:
    """Every answer follows stepsmith's output schema; a request for any other is a 422."""
    if response_format is None or response_format.type != "json_schema":
        return
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise RequestError(
            422,
            "response_format.json_schema",
            "response_format.json_schema: give the schema (GET /v1/schema)",
        )
    if spec.schema_ not in (definition("output"), load_schema()):
        raise RequestError(
            422,
            "response_format.json_schema.schema",
            "response_format.json_schema.schema: only stepsmith's output schema is served; "
            "GET /v1/schema returns it (or leave response_format out)",
        )


# stepsmith's report in an OpenAI reply, under `stepsmith`.
_REPORT_KEYS = (
    "refused_by",
    "selfcheck",
    "redactions",
    "output_redactions",
    "stripped",
    "numbered",
    "latency_s",
    "adapter",
    "safety_rule",
)


def report(result: Result, ignored: list[str]) -> dict[str, Any]:
    """stepsmith's own fields, beside OpenAI's."""
    body = result.to_dict()
    return {**{k: body[k] for k in _REPORT_KEYS}, "ignored": ignored}


def usage(result: Result) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.tokens,
        "total_tokens": result.prompt_tokens + result.tokens,
    }


def completion(result: Result, model: str, ignored: list[str]) -> dict[str, Any]:
    """OpenAI's chat.completion object for one answer."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.json, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "stepsmith": report(result, ignored),
    }


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


class _Streamer:
    """engine.generate in a thread; its settled text, masked, and its result, as queue events."""

    def __init__(self, engine: Engine, intent: str, context: dict | None, options: dict[str, Any]):
        self.events: queue.Queue = queue.Queue()
        self.region = region_of(context)
        self.counts: Counter = Counter()

        def work() -> None:
            try:
                result = engine.generate(intent, context, stream=self._text, revise=False, **options)
                self.events.put(("done", result))
            except InputError as e:
                self.events.put(("input", e))
            except Exception as e:  # reported as a stream error, never a dropped connection
                self.events.put(("failed", e))

        threading.Thread(target=work, daemon=True).start()

    def _text(self, _round: int, text: str) -> None:
        # The decoder sends an item only once it is whole, so an item's PII is masked whole.
        self.events.put(("text", redact(text, self.region, self.counts)))


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})


def stream_events(streamer: _Streamer, first: tuple, base: dict, ignored: list[str], usage_too: bool):
    """The SSE body: role, content deltas, the finish chunk (with stepsmith's report), [DONE]."""
    yield _chunk(base, {"role": "assistant", "content": ""})
    sent: list[str] = []
    event = first
    while True:
        kind, value = event
        if kind == "text":
            sent.append(value)
            yield _chunk(base, {"content": value})
        elif kind == "done":
            result: Result = value
            if not result.ok:
                message = f"{result.status}: {result.error}"
                yield sse(error_body(message, None, result.status) | base)
                break
            if not sent:  # answered by the safety rules: no token was decoded
                yield _chunk(base, {"content": result.json})
            yield _chunk(base, {}, "stop", stepsmith=report(result, ignored))
            if usage_too:
                yield sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage(result)})
            break
        else:
            yield sse(error_body("internal error; see the server log", None, "server_error") | base)
            break
        event = streamer.events.get()
    yield sse("[DONE]")


def add_routes(app: FastAPI, engine: Engine, *, max_tokens: int | None, timeout_s: float | None) -> None:
    """Mount /v1/models, /v1/schema and /v1/chat/completions on the app."""

    @app.get("/v1/models", summary="The loaded model and one entry per adapter, OpenAI's list shape")
    def models() -> dict[str, Any]:
        created = int(engine.model_path.stat().st_mtime)
        entry = {"object": "model", "created": created, "owned_by": "stepsmith"}
        return {"object": "list", "data": [{"id": i, **entry} for i in model_ids(engine)]}

    @app.get("/v1/schema", summary="The output schema every answer follows (for response_format)")
    def schema() -> dict[str, Any]:
        return definition("output")

    @app.post("/v1/chat/completions", summary="OpenAI-compatible: the procedure JSON as the reply")
    def chat(request: ChatRequest, response: Response, ticket: TicketHeader = None) -> Any:
        try:
            adapter = read_model(engine, request.model)
            check_format(request.response_format)
            intent, ignored = read_intent(request.messages)
            context = read_context(request)
        except RequestError as e:
            return error_response(e.status, str(e), e.param, e.code)
        options = {
            "max_tokens": request.max_completion_tokens or request.max_tokens or max_tokens,
            "timeout_s": timeout_s,
            "temperature": request.temperature,
            "adapter": adapter,
            "ticket": ticket,
        }
        if request.stream:
            return _stream(engine, intent, context, options, request, ignored)
        try:
            result = engine.generate(intent, context, **options)
        except InputError as e:
            return _bad_input(e)
        if not result.ok:
            return _failed(result)
        response.headers.update(retry_headers(result) or {})
        return completion(result, model_id(engine), ignored)


def _bad_input(e: InputError) -> JSONResponse:
    """The 422 of input the engine rejects, naming the ticket header or the messages."""
    return error_response(422, str(e), Tickets.HEADER if isinstance(e, TicketError) else "messages")


def _failed(result: Result) -> JSONResponse:
    """The error response of a failed Result: its status, message and headers."""
    status = STATUS.get(result.status, 500)
    response = error_response(status, f"{result.status}: {result.error}", None, result.status)
    response.headers.update(retry_headers(result) or {})
    return response


def _stream(engine: Engine, intent: str, context, options: dict, request: ChatRequest, ignored: list[str]):
    """A 422 if the input is bad (known before the first byte), else the event stream."""
    streamer = _Streamer(engine, intent, context, options)
    first = streamer.events.get()
    if first[0] == "input":
        return _bad_input(first[1])
    if first[0] == "done" and not first[1].ok:  # turned away or failed before a token: its status
        return _failed(first[1])
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_id(engine)}
    include = bool(request.stream_options and request.stream_options.include_usage)
    body: Iterator[str] = stream_events(streamer, first, base, ignored, include)
    return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
