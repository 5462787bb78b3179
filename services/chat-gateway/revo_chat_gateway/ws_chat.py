"""WebSocket chat at `GET /v1/ws`: sessions of user messages and agent runs, resumable.

A socket is only a window on a session. Each message's run is followed by a task of its
own (kept by the app's ChatHub, not by the socket): it stores the run's items and pushes
them, with the run's text tokens, to whichever of the session's sockets are connected to
this replica now. A client that disconnects loses nothing: the run goes on, and the client
resumes with `hello {session_id, last_seq}`. Nor does a replica killed mid-run lose the
run's items: the next replica to start adopts the run (run_adoption.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind

from revo_chat_gateway import metrics, permissions
from revo_chat_gateway.auth import LIMITER, limit_key, principal_of
from revo_chat_gateway.http_errors import HttpError
from revo_chat_gateway.keys import Principal, audit_actor
from revo_chat_gateway.limits import RateLimiter
from revo_chat_gateway.run_adoption import adopt_open_runs
from revo_chat_gateway.session_fanout import SessionFanout
from revo_chat_gateway.sessions import OpenRun, SessionStore
from revo_chat_gateway.settings import GatewaySettings
from revo_chat_gateway.ws_protocol import (
    BadFrame,
    agent_and_content,
    decode_client_frame,
    encode,
    error_frame,
)
from revo_contracts.chat import (
    ChatCancel,
    ChatClientFrame,
    ChatHello,
    ChatItem,
    ChatPing,
    ChatPong,
    ChatSession,
    ChatToken,
    ChatUserMessage,
)
from revo_contracts.inference import ChatMessage
from revo_contracts.runs import RunEvent, RunFinished, RunSubmit, TokenDelta
from revo_core.bus import Bus
from revo_core.errors import BusUnavailable, ServiceError
from revo_core.logging import get_logger
from revo_core.runs import RunFollower, cancel_run, new_run_id, submit_run
from revo_core.service import BUS, SETTINGS
from revo_core.tracing import extract

WS_PATH = "/v1/ws"
# How long a slow consumer's close may take before its connection is simply dropped.
CLOSE_GRACE_S = 1.0
# Pings keep idle sockets through proxies and notice vanished clients.
HEARTBEAT_S = 30.0
# An adopted run past its deadline is followed this long (its log read) before its cancel.
ADOPT_GRACE_S = 5.0
log = get_logger("revo.chat_gateway.ws")
_relayed_decoder = msgspec.json.Decoder(ChatItem | ChatToken)
_TOKEN_FRAMES = metrics.WS_FRAMES.labels("token")
_ITEM_FRAMES = metrics.WS_FRAMES.labels("item")
_tracer = trace.get_tracer("revo.chat_gateway")


class Outbox:
    """One socket's outgoing frames: a bounded queue drained by a writer task.

    A client that reads slower than its session produces is closed (1008), not buffered
    for without bound; the session's other sockets and its runs go on unaffected."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, max_frames: int) -> None:
        self.ws = ws
        self._transport = request.transport
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_frames)
        self._writer = asyncio.create_task(self._write())
        self._closer: asyncio.Task | None = None
        self.open = True
        self.last_seq = 0  # of the last item queued: each item goes once, in order

    def push_item(self, item: ChatItem, text: str) -> None:
        if item.seq > self.last_seq:
            self.last_seq = item.seq
            self.push(text)

    def push(self, text: str) -> None:
        if not self.open:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("closing a chat socket that does not read its frames")
            metrics.WS_SLOW_CONSUMERS.inc()
            self.open = False
            self._writer.cancel()
            self._closer = asyncio.create_task(self._close_slow_consumer())

    async def drained(self) -> None:
        """Until every queued frame is written (or the socket stopped writing)."""
        emptied = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({emptied, self._writer}, return_when=asyncio.FIRST_COMPLETED)
        emptied.cancel()

    async def _write(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                await self.ws.send_str(text)
                self._queue.task_done()
        except (ConnectionError, RuntimeError):
            self.open = False  # closing: the handler's read loop ends on its own

    async def _close_slow_consumer(self) -> None:
        try:
            with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self.ws.send_str(error_frame("slow_consumer", "frames were not read"))
                    await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"slow consumer")
        finally:
            # Even a close that went through (or was cut short: the handler ends as the
            # close begins, and its cleanup cancels this task) closes the transport only
            # once its write buffer drains, which a client that does not read never lets
            # happen; the transport stops reading meanwhile, so the client's sends hang.
            # Drop the connection.
            if self._transport is not None:
                self._transport.abort()

    async def stop(self) -> None:
        self.open = False
        self._writer.cancel()
        tasks = [self._writer, *([self._closer] if self._closer else [])]
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class FollowedRun:
    """A run a follow task stores the items of."""

    run_id: str
    agent: str
    timeout_s: float  # then it is cancelled


@dataclass
class LiveSession:
    """A session as this replica sees it: its connected sockets and the runs it follows."""

    session_id: str
    # Held while an item is stored and pushed, and while a socket joins: a joining socket
    # gets every item exactly once, the replayed ones first.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sockets: set[Outbox] = field(default_factory=set)
    runs: dict[str, asyncio.Task] = field(default_factory=dict)  # in submission order

    def latest_run(self) -> str | None:
        return next(reversed(self.runs), None)


class ChatHub:
    """The app's chat state: live sessions, their follow tasks, every open socket."""

    def __init__(
        self, store: SessionStore, bus: Bus, limiter: RateLimiter, settings: GatewaySettings
    ) -> None:
        self.store = store
        self.bus = bus
        self.limiter = limiter
        self.settings = settings
        self.fanout = SessionFanout(bus.nc, self.on_remote_frame)
        self.sessions: dict[str, LiveSession] = {}
        self.follows: set[asyncio.Task] = set()
        self.sockets: set[Outbox] = set()
        self.chats: set[SocketChat] = set()  # each open socket's conversation
        self._unwatching: set[asyncio.Task] = set()

    def live(self, session_id: str) -> LiveSession:
        return self.sessions.setdefault(session_id, LiveSession(session_id))

    def release(self, live: LiveSession) -> None:
        """Forget a session nobody watches and no run of this replica writes to."""
        if not live.sockets and not live.runs:
            self.sessions.pop(live.session_id, None)
            task = asyncio.create_task(self._unwatch_if_gone(live.session_id))
            self._unwatching.add(task)
            task.add_done_callback(self._unwatching.discard)

    async def _unwatch_if_gone(self, session_id: str) -> None:
        if session_id not in self.sessions:  # not joined again meanwhile
            await self.fanout.unwatch(session_id)

    async def join(self, live: LiveSession, outbox: Outbox, after_seq: int) -> None:
        last_seq = await self.store.last_seq(live.session_id)
        outbox.push(encode(ChatSession(session_id=live.session_id, last_seq=last_seq)))
        outbox.last_seq = after_seq
        await self._catch_up(live, outbox)
        async with live.lock:
            # Watching first: what another replica stores from now on comes live, and what
            # it stored before is in the database (an item in both is sent once).
            await self.fanout.watch(live.session_id)
            for item in await self.store.items_after(live.session_id, outbox.last_seq):
                outbox.push_item(item, encode(item))
            live.sockets.add(outbox)

    async def _catch_up(self, live: LiveSession, outbox: Outbox) -> None:
        """Replay the bulk of a long session at the socket's pace, without the lock (so
        runs are not held up)."""
        page = max(1, self.settings.ws_queue_frames // 2)
        while outbox.open:
            items = await self.store.items_after(live.session_id, outbox.last_seq)
            if len(items) <= page:
                break
            for item in items[:page]:
                outbox.push_item(item, encode(item))
            await outbox.drained()

    async def publish(self, live: LiveSession, items: list[ChatItem]) -> None:
        """Store the items as the session's next; push them to the sockets here and to the
        session's sockets on other replicas."""
        async with live.lock:
            stored = await self.store.append(live.session_id, items)
            texts = [encode(item) for item in stored]
            for item, text in zip(stored, texts, strict=True):
                await self._deliver(live, item, text)
        for text in texts:
            await self.fanout.send(live.session_id, text)

    async def _deliver(self, live: LiveSession, item: ChatItem, text: str) -> None:
        """Push an item to the session's sockets here, after any earlier item a socket has
        not had (stored by another replica, its frame not here yet). Under the lock."""
        behind = [o for o in live.sockets if o.last_seq < item.seq - 1]
        if behind:
            missing = await self.store.items_after(live.session_id, min(o.last_seq for o in behind))
            for earlier in missing:
                if earlier.seq < item.seq:
                    for outbox in behind:
                        outbox.push_item(earlier, encode(earlier))
        for outbox in list(live.sockets):
            outbox.push_item(item, text)
        _ITEM_FRAMES.inc(len(live.sockets))

    async def push_token(self, live: LiveSession, token: ChatToken) -> None:
        text = encode(token)
        for outbox in list(live.sockets):
            outbox.push(text)
        _TOKEN_FRAMES.inc(len(live.sockets))
        await self.fanout.send(live.session_id, text)

    async def on_remote_frame(self, session_id: str, data: bytes) -> None:
        """A frame of the session from the replica following its run."""
        live = self.sessions.get(session_id)
        if live is None or not live.sockets:
            return
        frame = _relayed_decoder.decode(data)
        text = data.decode()
        if isinstance(frame, ChatItem):
            async with live.lock:
                await self._deliver(live, frame, text)
        else:
            for outbox in list(live.sockets):
                outbox.push(text)

    async def start_run(self, live: LiveSession, principal: Principal, agent: str, text: str):
        """Store the user's message, submit its run, and follow the run in a task."""
        # Only the new message: the agent-runner adds the session's earlier turns itself
        # (its finished runs with this session_id), so sending them too would double them.
        submit = RunSubmit(
            run_id=new_run_id(),
            tenant=principal.tenant,
            agent=agent,
            messages=[ChatMessage(role="user", content=text)],
            session_id=live.session_id,
            user=principal.user(),
            owner=principal.owner,
        )
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.limiter.run_slot(limit_key(principal)))
            # Entered before submitting: token deltas are not replayed to a late follower.
            run = await stack.enter_async_context(
                RunFollower(self.bus, submit.tenant, submit.run_id, replay=False)
            )
            user = ChatItem(seq=1, kind="user", run_id=submit.run_id, agent=agent, content=text)
            await self.publish(live, [user])
            await submit_run(self.bus, submit)
            held = stack.pop_all()  # the follow task releases the slot and the follower
        followed = FollowedRun(submit.run_id, submit.agent, self.settings.run_timeout_s)
        self._spawn_follow(live, followed, run, held)

    async def adopt(self, run: OpenRun) -> bool:
        """Follow a run of a session whose replica stopped following it (killed, say): its
        events from the run's log (RUN_EVENTS) to its end, each stored once (what is stored
        already is skipped), with the answer. Events only: the run's tokens went to that
        replica's sockets, and the answer item has the whole text. False: followed here
        already."""
        live = self.live(run.session_id)
        if run.run_id in live.runs:
            return False
        # The run's deadline is from its message, as for the replica that submitted it; one
        # past it still has its log read (it may have ended) before it is cancelled.
        timeout_s = max(self.settings.run_timeout_s - run.age_s, ADOPT_GRACE_S)
        held = AsyncExitStack()
        try:
            follower = await held.enter_async_context(
                RunFollower(self.bus, run.tenant, run.run_id, tokens=False)
            )
        except BaseException:
            self.release(live)
            raise
        self._spawn_follow(live, FollowedRun(run.run_id, run.agent, timeout_s), follower, held)
        return True

    def _spawn_follow(
        self, live: LiveSession, followed: FollowedRun, run: RunFollower, held: AsyncExitStack
    ) -> None:
        task = asyncio.create_task(self._follow(live, followed, run, held))
        self.follows.add(task)
        live.runs[followed.run_id] = task

        def done(_: asyncio.Task) -> None:
            self.follows.discard(task)
            live.runs.pop(followed.run_id, None)
            self.release(live)

        task.add_done_callback(done)

    async def _follow(
        self, live: LiveSession, followed: FollowedRun, run: RunFollower, held: AsyncExitStack
    ) -> None:
        # Tokens go to the sockets as they come; the run's items are stored (and then
        # pushed) by a writer of their own, so a token never waits for Postgres.
        items: asyncio.Queue[ChatItem | None] = asyncio.Queue()
        writer = asyncio.create_task(self._store_items(live, items))
        async with held:
            try:
                async with asyncio.timeout(followed.timeout_s):
                    async for item in run:
                        await self._on_run_item(live, followed, item, items)
            except TimeoutError:
                await cancel_run(self.bus, followed.run_id, "timed out in the gateway")
            except Exception:
                log.exception("following a chat run failed", run_id=followed.run_id)
            finally:
                items.put_nowait(None)
                await writer

    async def _store_items(self, live: LiveSession, items: asyncio.Queue) -> None:
        """Store and push the run's items in order, those queued meanwhile together."""
        while True:
            batch = [await items.get()]
            while not items.empty():
                batch.append(items.get_nowait())
            ended = batch[-1] is None
            batch = [item for item in batch if item is not None]
            if batch:
                try:
                    await self.publish(live, batch)
                except Exception:
                    log.exception("storing a chat run's items failed", session=live.session_id)
            if ended:
                return

    async def _on_run_item(
        self,
        live: LiveSession,
        followed: FollowedRun,
        item: RunEvent | TokenDelta,
        items: asyncio.Queue[ChatItem | None],
    ) -> None:
        run_id, agent = followed.run_id, followed.agent
        if isinstance(item, TokenDelta):
            if item.kind == "text" and item.delta:
                await self.push_token(live, ChatToken(run_id=run_id, agent=agent, delta=item.delta))
                # Tokens come in bursts: let the writers drain between them, so a burst
                # alone never fills the queue of a client that does read.
                await asyncio.sleep(0)
            return
        items.put_nowait(ChatItem(seq=1, kind="event", run_id=run_id, event=item))
        if isinstance(item, RunFinished):
            answer = ChatItem(
                seq=1, kind="assistant", run_id=run_id, agent=agent, content=item.answer
            )
            items.put_nowait(answer)

    async def close_sockets_of_key(self, key_id: str) -> None:
        """Close the sockets opened with an API key that is now revoked."""
        revoked = [
            chat
            for chat in self.chats
            if chat.principal.via == "api_key" and chat.principal.subject == key_id
        ]
        await asyncio.gather(
            *(close_refused(chat.outbox, "API key revoked") for chat in revoked),
            return_exceptions=True,
        )

    async def close_sockets(self) -> None:
        await asyncio.gather(
            *(o.ws.close(code=WSCloseCode.GOING_AWAY) for o in list(self.sockets)),
            return_exceptions=True,
        )

    async def stop_follows(self) -> None:
        for task in list(self.follows):
            task.cancel()
        await asyncio.gather(*self.follows, return_exceptions=True)


class SocketChat:
    """One socket's conversation: which session it is in, and what each frame does."""

    def __init__(self, hub: ChatHub, principal: Principal, outbox: Outbox) -> None:
        self.hub = hub
        self.principal = principal
        self.outbox = outbox
        self.live: LiveSession | None = None
        # The upgrade request's span (it lasts as long as the socket).
        self.socket_span = trace.get_current_span().get_span_context()

    def within_rate(self) -> bool:
        """Take one of the caller's requests-per-minute for a frame; else say so (the
        socket stays open: the client waits and goes on)."""
        try:
            self.hub.limiter.check_request(limit_key(self.principal))
        except HttpError as error:
            self.outbox.push(error_frame(error.code, error.message))
            return False
        return True

    async def on_text(self, text: str) -> None:
        try:
            frame = decode_client_frame(text)
        except BadFrame as exc:
            self.outbox.push(error_frame("invalid_request", str(exc)))
            return
        try:
            await self._on_frame(frame)
        except HttpError as error:  # a full run slot: 429 over HTTP
            self.outbox.push(error_frame(error.code, error.message))
        except ServiceError as error:
            self.outbox.push(error_frame(str(error.code), error.message))
        except BusUnavailable as error:
            self.outbox.push(error_frame("overloaded", str(error)))
        except Exception:  # the socket lives on; the client is told, the log has the rest
            log.exception("a chat frame failed", type=type(frame).__name__)
            self.outbox.push(error_frame("internal", "the gateway could not do that; try again"))

    async def _on_frame(self, frame: ChatClientFrame) -> None:
        refusal = permissions.ws_refusal(frame, self.principal)
        if refusal is not None:
            self.outbox.push(error_frame("forbidden", refusal))
            return
        match frame:
            case ChatPing():
                self.outbox.push(encode(ChatPong()))
            case ChatHello():
                await self._hello(frame)
            case ChatUserMessage():
                await self._message(frame)
            case ChatCancel():
                await self._cancel(frame)

    async def _hello(self, hello: ChatHello) -> None:
        store = self.hub.store
        if hello.session_id is None:
            session_id = await self._new_session()
        elif await store.visible(
            hello.session_id, self.principal.tenant, permissions.owner_scope(self.principal)
        ):
            session_id = hello.session_id
        else:  # another tenant's or user's session reads as absent: its existence is not revealed
            self.outbox.push(error_frame("not_found", f"no session {hello.session_id!r}"))
            return
        await self._enter(session_id, hello.last_seq)

    async def _new_session(self) -> str:
        # Each is a row in Postgres: a client must not mint them without bound.
        self.hub.limiter.check_new_session(limit_key(self.principal))
        return await self.hub.store.create(self.principal.tenant, self.principal.owner)

    async def _enter(self, session_id: str, after_seq: int) -> None:
        self.leave()
        self.live = self.hub.live(session_id)
        await self.hub.join(self.live, self.outbox, after_seq)

    def leave(self) -> None:
        if self.live is not None:
            self.live.sockets.discard(self.outbox)
            self.hub.release(self.live)
            self.live = None

    async def _message(self, message: ChatUserMessage) -> None:
        if self.live is None:
            await self._enter(await self._new_session(), 0)
        assert self.live is not None
        agent, text = agent_and_content(message)
        metrics.WS_MESSAGES.inc()
        # The follow task starts inside the span, so the run's items keep its context too.
        with message_span(message, self.socket_span, agent, self.live.session_id):
            await self.hub.start_run(self.live, self.principal, agent, text)

    async def _cancel(self, cancel: ChatCancel) -> None:
        run_id = await self._run_to_cancel(cancel)
        if run_id is None:
            self.outbox.push(error_frame("not_found", "no such run in this session"))
            return
        actor = audit_actor(self.principal)
        await cancel_run(self.hub.bus, run_id, "cancelled by the user", actor=actor)

    async def _run_to_cancel(self, cancel: ChatCancel) -> str | None:
        if self.live is None:
            return None
        if cancel.run_id is None:
            return self.live.latest_run()
        known = await self.hub.store.has_run(self.live.session_id, cancel.run_id)
        return cancel.run_id if known else None


@contextmanager
def message_span(
    message: ChatUserMessage, socket_span: SpanContext, agent: str, session_id: str
) -> Iterator[None]:
    """A span per user message: in the client's trace when the frame carries a
    traceparent, else the root of a trace of its own, linked to the socket's span."""
    parent = extract({"traceparent": message.traceparent}) if message.traceparent else Context()
    links = [Link(socket_span)] if socket_span.is_valid else []
    with _tracer.start_as_current_span(
        "chat message",
        context=parent,
        kind=SpanKind.SERVER,
        links=links,
        attributes={"revo.agent": agent, "revo.session_id": session_id},
    ):
        yield


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    hub = request.app[CHAT_HUB]
    settings = hub.settings
    # Frames over the limit: aiohttp closes the socket with 1009 (message too big).
    ws = web.WebSocketResponse(max_msg_size=settings.max_message_bytes, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    outbox = Outbox(ws, request, settings.ws_queue_frames)
    hub.sockets.add(outbox)
    metrics.WS_CONNECTIONS.inc()
    chat = SocketChat(hub, principal_of(request), outbox)
    hub.chats.add(chat)
    expiry = asyncio.create_task(close_at_expiry(outbox, chat.principal.expires_at))
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY) or not chat.within_rate():
                continue
            if msg.type is WSMsgType.TEXT:
                await chat.on_text(msg.data)
            else:
                outbox.push(error_frame("invalid_request", "frames are JSON text, not binary"))
    finally:
        chat.leave()
        expiry.cancel()
        hub.chats.discard(chat)
        hub.sockets.discard(outbox)
        metrics.WS_CONNECTIONS.dec()
        await outbox.stop()
    return ws


async def close_at_expiry(outbox: Outbox, expires_at: float | None) -> None:
    """A socket is authenticated once, at its handshake: it ends when its credential does."""
    if expires_at is None:
        return
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    await close_refused(outbox, "credentials expired")


async def close_refused(outbox: Outbox, reason: str) -> None:
    """Tell the client why (`error unauthorized`), then close the socket (1008)."""
    outbox.push(error_frame("unauthorized", reason))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_GRACE_S):
            await outbox.drained()
    with contextlib.suppress(ConnectionError, RuntimeError):  # gone already
        await outbox.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())


CHAT_HUB: web.AppKey[ChatHub] = web.AppKey("chat_hub", ChatHub)


async def _chat_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    # Imported here: app.py imports this module to add its routes.
    from revo_chat_gateway.app import POOL

    settings: GatewaySettings = app[SETTINGS]  # type: ignore[assignment]
    hub = ChatHub(SessionStore(app[POOL]), app[BUS], app[LIMITER], settings)
    app[CHAT_HUB] = hub
    adoption = asyncio.create_task(adopt_open_runs(hub, settings.adopt_runs_within_s))
    yield
    adoption.cancel()
    await asyncio.gather(adoption, return_exceptions=True)
    # Runs go on in the agent-runner; the replica started next stores the rest of their items.
    await hub.stop_follows()


async def _close_sockets(app: web.Application) -> None:
    await app[CHAT_HUB].close_sockets()


def add_routes(app: web.Application) -> None:
    """The route, and the hub's lifetime (after the database's: it needs the pool)."""
    app.router.add_get(WS_PATH, chat_socket)
    app.cleanup_ctx.append(_chat_hub_ctx)
    app.on_shutdown.append(_close_sockets)
