"""Bad input gets a typed error naming the problem, and the service keeps serving."""

from __future__ import annotations

import pytest
from inference_testkit import chat_request, collect

from revo_contracts import subjects
from revo_contracts.inference import ChatMessage, ModelsResponse
from revo_core.bus import raise_if_error
from revo_core.errors import InvalidRequest, NotFound

pytestmark = pytest.mark.usefixtures("inference_service")


async def raw_request(bus, payload: bytes):
    msg = await bus.nc.request(subjects.INFERENCE_CHAT, payload, timeout=10)
    raise_if_error(msg)
    return msg


async def assert_still_serving(bus):
    chunks = await collect(bus, chat_request("Say hi.", max_tokens=4))
    assert chunks[-1].usage is not None


async def test_an_unknown_model_is_not_found_and_lists_the_available_ones(bus):
    with pytest.raises(NotFound) as err:
        await collect(bus, chat_request("hi", model="gpt-17"))

    assert "gpt-17" in err.value.message
    assert "smollm2-135m-instruct" in err.value.details["available"]
    await assert_still_serving(bus)


async def test_malformed_json_is_an_invalid_request(bus):
    with pytest.raises(InvalidRequest) as err:
        await raw_request(bus, b'{"messages": [oops')

    assert "malformed JSON" in err.value.message
    await assert_still_serving(bus)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", 0), ("temperature", 7.5), ("tenant", "acme.*"), ("messages", [])],
)
async def test_a_schema_invalid_field_is_named_in_the_error(bus, field, value):
    payload = {
        "messages": [{"role": "user", "content": "hi"}],
        "tenant": "acme",
        "request_id": "req-bad-field",
        field: value,
    }

    with pytest.raises(InvalidRequest) as err:
        await collect(bus, payload)

    assert err.value.details["field"] == field
    assert field in err.value.message


async def test_a_missing_required_field_is_named_in_the_error(bus):
    payload = {"messages": [{"role": "user", "content": "hi"}], "request_id": "req-no-tenant"}

    with pytest.raises(InvalidRequest) as err:
        await collect(bus, payload)

    assert err.value.details["field"] == "tenant"


async def test_an_unknown_role_is_an_invalid_request(bus):
    payload = {
        "messages": [{"role": "wizard", "content": "hi"}],
        "tenant": "acme",
        "request_id": "req-bad-role",
    }
    with pytest.raises(InvalidRequest) as err:
        await collect(bus, payload)

    assert err.value.details["field"] == "messages[0].role"


async def test_max_tokens_beyond_the_context_is_an_invalid_request(bus):
    with pytest.raises(InvalidRequest) as err:
        await collect(bus, chat_request("hi", max_tokens=100_000))

    assert err.value.details["field"] == "max_tokens"
    assert err.value.details["max_context"] == 2048
    await assert_still_serving(bus)


async def test_a_prompt_that_leaves_no_room_for_max_tokens_is_an_invalid_request(bus):
    long_text = "word " * 1900
    with pytest.raises(InvalidRequest):
        await collect(bus, chat_request(long_text, max_tokens=400))


async def test_a_json_schema_format_without_a_schema_is_an_invalid_request(bus):
    payload = chat_request("hi")
    payload = {
        "messages": [{"role": "user", "content": "hi"}],
        "tenant": "acme",
        "request_id": "req-no-schema",
        "response_format": {"type": "json_schema"},
    }
    with pytest.raises(InvalidRequest) as err:
        await collect(bus, payload)

    assert err.value.details["field"] == "response_format.json_schema"


async def test_the_service_lists_its_models_after_all_that(bus):
    reply = await bus.request(subjects.INFERENCE_MODELS, {}, ModelsResponse)

    names = {m.name: m for m in reply.models}
    assert names["smollm2-135m-instruct"].loaded
    assert names["all-minilm-l6-v2"].dimensions == 384
    assert ChatMessage(role="user", content="x")  # contracts still import cleanly
