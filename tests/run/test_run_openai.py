"""The OpenAI-compatible routes, driven by the real `openai` client against the real server."""

from __future__ import annotations

import json

import pytest

from data.schema import definition, validate_output
from run.openai_api import ChatRequest, Message, RequestError, check_format, read_context, read_intent


def _request(**fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_the_intent_is_the_last_user_message_and_skipped_turns_are_named():
    messages = [
        Message(role="system", content="be brief"),
        Message(role="user", content="first"),
        Message(role="assistant", content="{}"),
        Message(
            role="user", content=[{"type": "text", "text": "turn on "}, {"type": "text", "text": "wifi"}]
        ),
    ]
    assert read_intent(messages) == (
        "turn on wifi",
        ["messages[0] (system)", "messages[1] (user)", "messages[2] (assistant)"],
    )
    with pytest.raises(RequestError, match="no user message"):
        read_intent([Message(role="system", content="x")])


def test_context_comes_from_context_or_metadata_never_both():
    assert read_context(_request(context={"app": "Slack"})) == {"app": "Slack"}
    meta = _request(metadata={"platform": "ios", "permissions": "admin, billing"})
    assert read_context(meta) == {"platform": "ios", "permissions": ["admin", "billing"]}
    with pytest.raises(RequestError, match="not a context field"):
        read_context(_request(metadata={"colour": "red"}))
    with pytest.raises(RequestError, match="in one of them"):
        read_context(_request(metadata={"app": "a"}, context={"app": "b"}))


def test_only_the_output_schema_is_accepted_as_a_json_schema():
    check_format(None)
    check_format(_request(response_format={"type": "json_object"}).response_format)
    ours = {"type": "json_schema", "json_schema": {"name": "procedure", "schema": definition("output")}}
    check_format(_request(response_format=ours).response_format)
    other = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with pytest.raises(RequestError, match="only stepsmith's output schema"):
        check_format(_request(response_format=other).response_format)


def test_unsupported_sampling_fields_are_rejected_by_name():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="top_p"):
        _request(top_p=0.9)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        _request(n=2)


@pytest.fixture(scope="module")
def client(engine):
    openai = pytest.importorskip("openai")
    from run.api import create_app
    from run.serve import in_background

    with in_background(create_app(engine, ui=False)) as port:
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model_name(engine):
    return engine.model_path.stem


@pytest.mark.model
def test_models_lists_the_loaded_model(client, model_name):
    assert [m.id for m in client.models.list().data] == [model_name]


@pytest.mark.model
def test_a_chat_completion_holds_a_schema_valid_procedure(client, model_name):
    reply = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "turn on dark mode"}],
        extra_body={"context": {"platform": "android"}},
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": definition("output")}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and reply.model == model_name
    assert validate_output(json.loads(choice.message.content)) == []
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.model_extra["stepsmith"]["ignored"] == ["messages[0] (system)"]


@pytest.mark.model
def test_a_streamed_completion_arrives_in_pieces_that_join_into_a_valid_answer(client, model_name):
    stream = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": "set an out-of-office reply"}],
        metadata={"app": "Outlook", "platform": "web"},
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # streamed as decoded, not sent whole at the end
    assert validate_output(json.loads("".join(pieces))) == []
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.model
def test_a_streamed_refusal_by_the_rules_comes_whole(client, model_name):
    stream = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": "how do I spy on my wife's WhatsApp"}],
        stream=True,
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(content)["schema"] == "refusal"
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert last.model_extra["stepsmith"]["refused_by"] == "rules"


@pytest.mark.model
def test_clear_errors_reach_the_client(client, model_name):
    import openai

    with pytest.raises(openai.NotFoundError, match="not loaded"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    other = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with pytest.raises(openai.UnprocessableEntityError, match="only stepsmith's output schema"):
        client.chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": "hi"}], response_format=other
        )
    with pytest.raises(openai.UnprocessableEntityError, match="top_p"):
        client.chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": "hi"}], top_p=0.5
        )
    with pytest.raises(openai.UnprocessableEntityError, match="blank"):
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "\u200b "}])


@pytest.mark.model
def test_a_stream_turned_away_before_its_first_token_gets_a_503_with_its_ticket(engine, model_name):
    openai = pytest.importorskip("openai")
    from run.api import create_app
    from run.serve import in_background

    with in_background(create_app(engine, ui=False, timeout_s=0.2)) as port, engine._lock:
        impatient = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError, match="retry later") as turned_away:
            impatient.chat.completions.create(
                model=model_name, messages=[{"role": "user", "content": "mute a chat"}], stream=True
            )
    response = turned_away.value.response
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert response.headers["stepsmith-ticket"].count(".") == 2
