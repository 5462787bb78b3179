"""The bus and micro endpoints against a real nats-server: typed replies and errors."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest

from revo_contracts.errors import ErrorCode
from revo_contracts.streams import ALL_STREAMS
from revo_core.bus import Bus
from revo_core.embedded.ports import free_port
from revo_core.endpoints import Endpoints
from revo_core.errors import (
    BusUnavailable,
    InternalError,
    InvalidRequest,
    NotFound,
    Overloaded,
    RequestTimeout,
)
from revo_core.jetstream import ensure_streams


class Greet(msgspec.Struct):
    name: str
    wait: float = 0.0


class Greeting(msgspec.Struct):
    text: str


@pytest.fixture
async def endpoints(bus):
    service = Endpoints(bus, "greeter", max_in_flight=4)
    await service.start()
    yield service
    await service.stop(grace=1)


async def test_connecting_to_a_server_that_is_not_there_says_so_clearly():
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailable) as err:
        await Bus.connect(url, name="test", connect_timeout=0.5)

    assert url in str(err.value) and "revo up" in str(err.value)


async def test_a_request_gets_its_typed_reply(bus, endpoints):
    async def greet(request: Greet) -> Greeting:
        return Greeting(text=f"hello {request.name}")

    await endpoints.add("greet", "test.greet", Greet, greet)

    reply = await bus.request("test.greet", Greet(name="ada"), Greeting)

    assert reply == Greeting(text="hello ada")


async def test_a_handler_error_arrives_as_the_same_typed_exception(bus, endpoints):
    async def greet(request: Greet) -> Greeting:
        raise NotFound(f"nobody called {request.name}", {"known": ["ada"]})

    await endpoints.add("greet", "test.greet.err", Greet, greet)

    with pytest.raises(NotFound) as err:
        await bus.request("test.greet.err", Greet(name="bob"), Greeting)

    assert err.value.details == {"known": ["ada"]}
    assert err.value.code is ErrorCode.NOT_FOUND


async def test_error_replies_carry_the_micro_error_headers(bus, endpoints):
    async def greet(request: Greet) -> Greeting:
        raise ValueError("a bug")

    await endpoints.add("greet", "test.greet.bug", Greet, greet)

    msg = await bus.nc.request("test.greet.bug", b'{"name":"x"}', timeout=2)

    assert msg.headers["Nats-Service-Error-Code"] == "internal"
    # The exception's text is the service's log's, never the caller's.
    assert "a bug" not in msg.headers["Nats-Service-Error"]
    assert "internal error in greeter (trace " in msg.headers["Nats-Service-Error"]
    with pytest.raises(InternalError):
        await bus.request("test.greet.bug", Greet(name="x"), Greeting)


async def test_a_database_that_cannot_be_reached_is_overloaded_not_internal(bus, endpoints):
    # Postgres restarting under bench/chaos.py: memory.store and ledger.report answered
    # internal with the connection error's text. A real refused connection here.
    async def greet(request: Greet) -> Greeting:
        await asyncpg.connect(f"postgresql://revo@127.0.0.1:{free_port()}/revo", timeout=2)
        return Greeting(text=request.name)

    await endpoints.add("greet", "test.greet.db", Greet, greet)

    msg = await bus.nc.request("test.greet.db", b'{"name":"x"}', timeout=5)

    assert msg.headers["Nats-Service-Error-Code"] == "overloaded"
    assert "Errno" not in msg.headers["Nats-Service-Error"]
    with pytest.raises(Overloaded):
        await bus.request("test.greet.db", Greet(name="x"), Greeting)


async def test_a_malformed_request_is_refused_and_the_endpoint_keeps_serving(bus, endpoints):
    async def greet(request: Greet) -> Greeting:
        return Greeting(text=request.name)

    await endpoints.add("greet", "test.greet.bad", Greet, greet)

    deep = b'{"name": "x", "extra": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    for payload in (b"not json", b'{"name": 42}', b"{}", deep):
        msg = await bus.nc.request("test.greet.bad", payload, timeout=2)
        assert msg.headers["Nats-Service-Error-Code"] == "invalid_request"
    with pytest.raises(InvalidRequest):
        await bus.request("test.greet.bad", {"nom": "x"}, Greeting)
    assert (await bus.request("test.greet.bad", Greet(name="ok"), Greeting)).text == "ok"


async def test_requests_to_one_endpoint_run_concurrently(bus, endpoints):
    both_inside = asyncio.Event()
    inside = 0

    async def greet(request: Greet) -> Greeting:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        # Serialized handling would wait here forever: the second request never enters.
        await asyncio.wait_for(both_inside.wait(), timeout=5)
        return Greeting(text=request.name)

    await endpoints.add("greet", "test.greet.conc", Greet, greet)

    replies = await asyncio.gather(
        bus.request("test.greet.conc", Greet(name="a"), Greeting),
        bus.request("test.greet.conc", Greet(name="b"), Greeting),
    )
    assert {r.text for r in replies} == {"a", "b"}


async def test_beyond_max_in_flight_a_request_is_told_overloaded(bus):
    service = Endpoints(bus, "tiny", max_in_flight=1)
    await service.start()
    release = asyncio.Event()

    async def hold(request: Greet) -> Greeting:
        await release.wait()
        return Greeting(text=request.name)

    await service.add("hold", "test.hold", Greet, hold)
    first = asyncio.create_task(bus.request("test.hold", Greet(name="a"), Greeting))
    await asyncio.sleep(0.2)

    with pytest.raises(Overloaded):
        await bus.request("test.hold", Greet(name="b"), Greeting)
    release.set()
    assert (await first).text == "a"
    await service.stop(grace=1)


async def test_a_subject_nobody_serves_is_bus_unavailable(bus):
    with pytest.raises(BusUnavailable):
        await bus.request("test.nobody.home", Greet(name="x"), Greeting)


async def ignore(_msg) -> None:
    pass


async def test_a_reply_that_never_comes_is_a_timeout(bus):
    await bus.nc.subscribe("test.silent", cb=ignore)
    with pytest.raises(RequestTimeout):
        await bus.request("test.silent", Greet(name="x"), Greeting, timeout=0.3)


async def test_services_answer_srv_ping(bus, endpoints):
    replies = []

    async def keep(msg) -> None:
        replies.append(msg)

    inbox = bus.nc.new_inbox()
    sub = await bus.nc.subscribe(inbox, cb=keep)
    await bus.nc.publish("$SRV.PING.greeter", b"", reply=inbox)
    await asyncio.sleep(0.3)
    await sub.unsubscribe()

    assert any(b'"name":"greeter"' in m.data.replace(b" ", b"") for m in replies)


async def test_streams_are_created_idempotently(bus):
    await ensure_streams(bus.js)
    await ensure_streams(bus.js)

    for spec in ALL_STREAMS:
        info = await bus.js.stream_info(spec.name)
        assert info.config.subjects == list(spec.subjects)
        assert info.config.duplicate_window == spec.duplicate_window_s


async def test_a_message_over_the_payload_limit_is_refused_with_its_size(bus, endpoints):
    async def greet(request: Greet) -> Greeting:
        return Greeting(text=request.name)

    await endpoints.add("greet", "test.greet.big", Greet, greet)
    huge = Greet(name="x" * (bus.nc.max_payload + 1))

    with pytest.raises(InvalidRequest) as err:
        await bus.request("test.greet.big", huge, Greeting)

    assert err.value.details["max_payload"] == bus.nc.max_payload
    assert (await bus.request("test.greet.big", Greet(name="ok"), Greeting)).text == "ok"
