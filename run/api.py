"""The HTTP API: POST /v1/procedures, GET /healthz and the OpenAI-compatible routes
(run/openai_api.py) on one FastAPI app, with the Gradio UI at /.

The request model is built from data/schema.json ($defs/input and $defs/context), so the API
accepts exactly what the dataset does. Requests run in FastAPI's thread pool and queue on the
engine's lock (the llama.cpp context is not thread-safe); each has the engine's timeout.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.schema import load_schema
from run.boundary import InputError
from run.engine import Engine
from run.openai_api import STATUS, TicketHeader, add_routes, error_body, retry_headers

OPENAI_PATHS = ("/v1/chat/", "/v1/models")

log = logging.getLogger("run.api")
# 64 KiB: a 4,000-character intent is at most 16 KB of UTF-8 and a full context under 2 KB,
# so anything larger is not a real request.
MAX_BODY_BYTES = 64 * 1024


def _limits(prop: dict[str, Any]) -> dict[str, Any]:
    out = {"min_length": prop.get("minLength"), "max_length": prop.get("maxLength")}
    return {k: v for k, v in out.items() if v is not None}


def _field(prop: dict[str, Any]) -> tuple[Any, Any]:
    """An optional pydantic (type, Field) for a JSON-schema string or array-of-strings property.

    Optional means it may be left out, not sent as null: the schema has no null, so `"app": null`
    is a 422 like any other wrong type (an unvalidated None default stands for "left out")."""
    about = prop.get("description")
    if prop.get("type") == "array":
        item = Annotated[str, Field(**_limits(prop["items"]))]
        return list[item], Field(None, description=about, max_length=prop.get("maxItems"))
    return str, Field(None, description=about, pattern=prop.get("pattern"), **_limits(prop))


def _context_model() -> type[BaseModel]:
    props = load_schema()["$defs"]["context"]["properties"]
    fields = {name: _field(prop) for name, prop in props.items()}
    forbid = ConfigDict(extra="forbid")
    return create_model("Context", __config__=forbid, **fields)


Context = _context_model()
_INPUT = load_schema()["$defs"]["input"]["properties"]


class ProcedureRequest(BaseModel):
    """An intent and, optionally, where the user is (fields and limits from data/schema.json)."""

    model_config = ConfigDict(extra="forbid")
    intent: str = Field(
        description=_INPUT["intent"]["description"],
        min_length=_INPUT["intent"]["minLength"],
        max_length=_INPUT["intent"]["maxLength"],
        pattern=_INPUT["intent"]["pattern"],
        examples=["reset my password in the Shopify app"],
    )
    context: Context = Field(None, description=load_schema()["$defs"]["context"]["description"])
    adapter: str | None = Field(
        None,
        description="a loaded adapter to answer with (GET /v1/models lists them); null picks the "
        "adapter of the context's domain, else the server's default",
    )


class SelfCheck(BaseModel):
    """Which self-check rules failed on each draft, and how many drafts it took."""

    enabled: bool
    rounds: int
    failed: list[list[str]]
    passed: bool
    violations: list[dict[str, str]]
    stopped: str | None = Field(
        None,
        description="why revisions stopped before the rules passed (timeout, budget, invalid), else null",
    )


class ProcedureResponse(BaseModel):
    """A schema-valid answer, its renderings and how it was made."""

    output: dict[str, Any] = Field(
        description="A procedure or a refusal, valid against $defs/output of data/schema.json"
    )
    numbered: str = Field(description="The numbered-list rendering: steps, then constraints and validation")
    json_text: str = Field(description="The output as compact JSON, as the model wrote it")
    refused_by: Literal["rules", "model"] | None = Field(
        description="'rules' when the safety layer refused, 'model' when the model did, else null"
    )
    selfcheck: SelfCheck
    tokens: int = Field(description="tokens generated over all drafts")
    latency_s: float
    redactions: dict[str, int] = Field(description="PII masked in the input before prompting, by kind")
    output_redactions: dict[str, int] = Field(description="PII masked in the answer, by kind")
    stripped: int = Field(description="invisible formatting characters removed from the input")
    model: str
    adapter: str | None = Field(description="the LoRA adapter that answered; null: the model alone")
    safety_rule: str | None = Field(
        description="the safety rule that refused (category#index; whether it read the context), else null"
    )


class ErrorResponse(BaseModel):
    """What went wrong, in one line."""

    message: str
    detail: Any = None


def _where(loc: tuple) -> str:
    # A key the client made up ("Extra inputs are not permitted") is shown cut and escaped, so a
    # 422 never echoes more than a few characters of raw input.
    return ".".join(_short(str(p)) for p in loc if p != "body") or "body"


def _short(part: str, limit: int = 32) -> str:
    part = part if len(part) <= limit else part[: limit - 3] + "..."
    return part.encode("ascii", "backslashreplace").decode("ascii")


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == r"\S":
        return "is blank; write at least one non-space character"
    return error["msg"]


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    lines = [f"{_where(e['loc'])}: {_message(e)}" for e in errors]
    detail = [{"loc": [_short(str(p)) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
    return _unprocessable(request, "; ".join(lines), detail, _where(errors[0]["loc"]) if errors else None)


def _unprocessable(request: Request, message: str, detail: list[dict], param: str | None) -> JSONResponse:
    """A 422 with the project's `message` and `detail`, plus the `error` object OpenAI's clients
    read on the OpenAI routes."""
    content: dict[str, Any] = {"message": message, "detail": detail}
    if request.url.path.startswith(OPENAI_PATHS):
        content["error"] = error_body(message, param)["error"]
    return JSONResponse(status_code=422, content=content)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error as JSON with a `message`. A body FastAPI cannot parse (invalid UTF-8,
    JSON nested past the recursion limit, an integer of thousands of digits) is a 422 like any
    other malformed body, and its text is never echoed."""
    if exc.status_code == 400 and request.method == "POST":
        message = "body: not a JSON document this API can read (check its encoding, nesting and numbers)"
        return _unprocessable(
            request, message, [{"loc": ["body"], "msg": message, "type": "json_invalid"}], "body"
        )
    allowed = (exc.headers or {}).get("Allow")
    message = {
        404: "no such route; see /docs",
        405: f"method not allowed on this route; use {allowed}"
        if allowed
        else "method not allowed on this route",
    }.get(exc.status_code, str(exc.detail))
    return JSONResponse(status_code=exc.status_code, content={"message": message}, headers=exc.headers)


class BodyLimit:
    """ASGI middleware: a 422 for request bodies over `limit` bytes, declared or streamed, on
    every route (the Gradio demo's included)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(int(declared), scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._reject(len(body), scope, receive, send)
        sent = [False]

        async def replay() -> dict:
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def _reject(self, size: int, scope: dict, receive: Any, send: Any) -> None:
        msg = f"body: {size} bytes is over the {self.limit}-byte limit; send one intent and its context"
        detail = [{"loc": ["body"], "msg": msg, "type": "too_large"}]
        await JSONResponse(status_code=422, content={"message": msg, "detail": detail})(scope, receive, send)


def create_app(
    engine: Engine,
    *,
    ui: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_tokens: int | None = None,
    timeout_s: float | None = None,
) -> FastAPI:
    """The app: the API routes, then (with `ui`) the Gradio demo mounted at /.

    max_tokens and timeout_s override the engine's config for every request (the benchmark
    and tests use them); None keeps the engine's own.
    """
    app = FastAPI(
        title="stepsmith",
        summary="Structured, task-oriented procedures from a local model",
        version="0.1.0",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    # async: it runs on the event loop, not in the worker threads that wait for the model, so it
    # answers at once however many requests are in line.
    @app.get("/healthz", summary="Liveness, and which model is loaded")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model": engine.model_path.name, "constraint": engine.constraint.name}

    @app.post(
        "/v1/procedures",
        response_model=ProcedureResponse,
        summary="Write a procedure (or a refusal) for one intent",
        responses={
            422: {"model": ErrorResponse},
            502: {"model": ErrorResponse},
            504: {"model": ErrorResponse},
        },
    )
    def procedures(request: ProcedureRequest, response: Response, ticket: TicketHeader = None) -> Any:
        context = request.context.model_dump(exclude_none=True) if request.context else None
        try:
            result = engine.generate(
                request.intent,
                context or None,
                max_tokens=max_tokens,
                timeout_s=timeout_s,
                adapter=request.adapter,
                ticket=ticket,
            )
        except InputError as e:
            return JSONResponse(status_code=422, content={"message": str(e)})
        except Exception:  # one bad request must not take the server down
            log.exception("generation failed")
            return JSONResponse(status_code=500, content={"message": "internal error; see the server log"})
        if not result.ok:
            content = {"message": f"{result.status}: {result.error}"}
            status = STATUS.get(result.status, 500)
            return JSONResponse(status_code=status, content=content, headers=retry_headers(result))
        response.headers.update(retry_headers(result) or {})
        body = result.to_dict()
        return ProcedureResponse(json_text=result.json, **{k: body[k] for k in _RESPONSE_KEYS})

    add_routes(app, engine, max_tokens=max_tokens, timeout_s=timeout_s)
    _answer_the_rest(app)

    if ui:
        import gradio as gr

        from run.ui import build_ui

        # System fonts: the default theme fetches Google Fonts, which an offline machine cannot.
        theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
        blocks = build_ui(engine, max_tokens=max_tokens)
        app = gr.mount_gradio_app(app, blocks, path="/", theme=theme, footer_links=["api"])
    return app


def _answer_the_rest(app: FastAPI) -> None:
    """A JSON 404 or 405 with the project's `message` for every other method or path under the
    API's prefixes: otherwise Gradio, mounted at /, would take them and answer without one."""
    methods = {}
    for route in app.routes:
        if getattr(route, "methods", None) and not route.path.startswith(("/docs", "/openapi", "/redoc")):
            methods.setdefault(route.path, set()).update(route.methods - {"HEAD"})
    every = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    async def rest(request: Request) -> None:
        allowed = methods.get(request.url.path)
        if allowed:
            raise StarletteHTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        raise StarletteHTTPException(404)

    for path in ("/v1/{rest:path}", *methods):
        app.add_api_route(path, rest, methods=every, include_in_schema=False)


_RESPONSE_KEYS = (
    "output",
    "numbered",
    "refused_by",
    "selfcheck",
    "tokens",
    "latency_s",
    "redactions",
    "output_redactions",
    "stripped",
    "model",
    "adapter",
    "safety_rule",
)
