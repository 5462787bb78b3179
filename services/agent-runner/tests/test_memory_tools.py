"""Agents and memory: the assistant's recall before it answers, the recall and remember
tools, against the real memory service with real embeddings (the model is scripted).

The world of these tests is one nats-server with two accounts: the runner, the scripted
model and the memory service in one, and an inference service that serves only the
embedding model in the other, which exports `inference.embed` to the first. So the memory
service embeds with the real model while `inference.chat` is the script's alone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from runner_testkit import new_submit, run_to_end

from revo_agent_runner.prompting import RECALLED_HEADER
from revo_agent_runner.tools.base import ToolContext
from revo_agent_runner.tools.memory import NO_MEMORIES, recall_scope, scope_value
from revo_contracts import subjects
from revo_contracts.inference import ChatMessage
from revo_contracts.memory import (
    MemoryInput,
    MemoryRecallRequest,
    MemoryRecallResponse,
    MemoryScope,
    MemoryStoreRequest,
    MemoryStoreResponse,
)
from revo_core.bus import Bus
from revo_core.embedded.nats_server import NatsServer
from revo_core.embedded.service_process import ServiceProcess
from revo_core.testing.fixtures import embed_only_inference, write_test_agents_file
from revo_core.testing.scripted_model import ScriptedModel, call, text

ACCOUNTS_CONF = """
accounts {
  RUNS: {
    jetstream: enabled
    users: [{user: runs, password: runs}]
    imports: [{service: {account: EMBED, subject: "inference.embed"}}]
  }
  EMBED: {
    jetstream: enabled
    users: [{user: embed, password: embed}]
    exports: [{service: "inference.embed"}]
  }
}
no_auth_user: runs
"""

MEMORY_AGENT_YAML = """
  rememberer:
    description: Test agent with the memory tools.
    prompt: You are a test agent that remembers.
    tools: [recall, remember, final_answer]
"""

DEPLOY_RULE = "Deploys to production happen only on Tuesdays, after the release review."
OTHER_TENANT_RULE = "Deploys to production happen on Fridays at noon, any week."
QUESTION = "When are we allowed to deploy to production?"
# The memory service's limit here, below what the remember tool lets through (2000).
MAX_TEXT_CHARS = 1000


class AccountsNats(NatsServer):
    """nats-server with the accounts above; clients without credentials are in RUNS."""

    def command(self) -> list[str]:
        config = self.store_dir / "accounts.conf"
        config.write_text(ACCOUNTS_CONF)
        return [*super().command(), "-c", str(config)]

    def url_as(self, user: str) -> str:
        return f"nats://{user}:{user}@127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def memory_nats(revo_tmp: Path) -> Iterator[AccountsNats]:
    server = AccountsNats(revo_tmp / "nats-agent-memory")
    server.store_dir.mkdir(parents=True, exist_ok=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def memory_world(
    memory_nats: AccountsNats, memory_factory, runner_factory, otlp_receiver, revo_tmp: Path
) -> Iterator[ServiceProcess]:
    base = revo_tmp / "agent-memory"
    # This server has its own static accounts, not the session's authority: no credentials.
    embedder = embed_only_inference(
        memory_nats.url_as("embed"), base, otlp_receiver.endpoint, NATS_CREDS=""
    )
    try:
        memory_factory.start(
            memory_nats.url,
            "memory-for-agents",
            REVO_MEMORY_MAX_TEXT_CHARS=str(MAX_TEXT_CHARS),
            NATS_CREDS="",
        )
        agents_file = write_test_agents_file(base / "agents.yaml")
        agents_file.write_text(agents_file.read_text() + MEMORY_AGENT_YAML)
        yield runner_factory.start(
            memory_nats.url,
            "runner-memory",
            REVO_AGENT_RUNNER_AGENTS_FILE=str(agents_file),
            NATS_CREDS="",
        )
    finally:
        embedder.stop()


@pytest.fixture(scope="module")
async def memory_model(memory_nats: AccountsNats) -> AsyncIterator[ScriptedModel]:
    connection = await Bus.connect(memory_nats.url, name="scripted-model-memory")
    model = await ScriptedModel(connection).start()
    yield model
    await model.stop()
    await connection.close()


@pytest.fixture
async def mbus(memory_nats: AccountsNats, memory_world, memory_model) -> AsyncIterator[Bus]:
    connection = await Bus.connect(memory_nats.url, name="pytest-agent-memory")
    yield connection
    await connection.close()


def new_tenant() -> str:
    return f"am{uuid.uuid4().hex[:10]}"


async def store(bus: Bus, scope: MemoryScope, text_: str, **fields) -> MemoryStoreResponse:
    request = MemoryStoreRequest(scope=scope, memories=[MemoryInput(text=text_, **fields)])
    return await bus.request(subjects.MEMORY_STORE, request, MemoryStoreResponse, timeout=30)


def ask(question: str, **fields):
    """An assistant run as the gateway submits one: the user's message, no workspace."""
    return new_submit(
        agent="assistant",
        task=None,
        messages=[ChatMessage(role="user", content=question)],
        **fields,
    )


async def test_the_assistant_answers_with_its_tenant_s_memories_in_its_prompt(
    mbus, memory_model, otlp_receiver
):
    tenant, other = new_tenant(), new_tenant()
    await store(mbus, MemoryScope(tenant=tenant), DEPLOY_RULE, kind="fact")
    await store(mbus, MemoryScope(tenant=other), OTHER_TENANT_RULE, kind="fact")
    submit = ask(QUESTION, tenant=tenant, user="ana@example.com")
    memory_model.script(submit.run_id, text("On Tuesdays, after the release review."))

    with trace.get_tracer("test").start_as_current_span("submitter") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        record = await run_to_end(mbus, submit)

    assert record.types == [
        "queued",
        "started",
        "tool_called",
        "tool_result",
        "model_call",
        "assistant_message",
        "finished",
    ]
    called, result = record.of_type("tool_called")[0], record.of_type("tool_result")[0]
    assert (called.tool, called.step, called.arguments["query"]) == ("recall", 0, QUESTION)
    assert called.arguments["token_budget"] == 400
    assert result.ok and DEPLOY_RULE in result.output and "score" in result.output
    assert "Fridays" not in result.output
    # What was recalled is in the system prompt of the model's call, not a tool message.
    (request,) = memory_model.requests_of(submit.run_id)
    system = request.messages[0]
    assert system.role == "system" and RECALLED_HEADER in system.content
    assert DEPLOY_RULE in system.content and "Fridays" not in system.content
    assert [m.role for m in request.messages[1:]] == ["user"]
    assert record.last.answer == "On Tuesdays, after the release review."
    # One trace from the run through memory to the embedding model.
    assert otlp_receiver.wait_for(trace_id, "tool recall").service == "agent-runner"
    assert otlp_receiver.wait_for(trace_id, "memory.recall process").service == "memory"
    assert otlp_receiver.wait_for(trace_id, "inference.embed process").service == "inference"


async def test_a_tenant_without_memories_recalls_none_of_another_tenant_s(mbus, memory_model):
    await store(mbus, MemoryScope(tenant=new_tenant()), OTHER_TENANT_RULE)
    submit = ask(QUESTION, tenant=new_tenant())
    memory_model.script(submit.run_id, text("I do not know your deploy rules yet."))

    record = await run_to_end(mbus, submit)

    assert record.last.answer == "I do not know your deploy rules yet."
    result = record.of_type("tool_result")[0]
    assert result.ok and result.output.startswith(NO_MEMORIES)
    system = memory_model.requests_of(submit.run_id)[0].messages[0]
    assert RECALLED_HEADER not in system.content and "Fridays" not in system.content


async def test_what_a_model_remembers_is_found_by_a_later_recall_of_the_same_user(
    mbus, memory_model
):
    tenant = new_tenant()
    fix = "test_checkout_total is flaky when TZ is unset; run the suite with TZ=UTC."
    first = new_submit(agent="rememberer", tenant=tenant, user="ana")
    memory_model.script(
        first.run_id,
        call("remember", text=fix, kind="fix", tags=["ci"]),
        call("final_answer", answer="noted"),
    )
    remembered = await run_to_end(mbus, first)

    stored = remembered.of_type("tool_result")[0]
    assert stored.ok and stored.output.startswith("remembered as a new memory"), stored

    later = new_submit(agent="rememberer", tenant=tenant, user="ana")
    memory_model.script(
        later.run_id,
        call("recall", query="why does test_checkout_total fail?", kinds=["fix"]),
        call("final_answer", answer="set TZ=UTC"),
    )
    recalled = (await run_to_end(mbus, later)).of_type("tool_result")[0]
    assert recalled.ok and fix in recalled.output and "[fix, score" in recalled.output
    assert "(tags: ci)" in recalled.output
    # Kept as the user's, with the run that learnt it; another user does not see it.
    found = await mbus.request(
        subjects.MEMORY_RECALL,
        MemoryRecallRequest(scope=MemoryScope(tenant=tenant, user="ana"), query=fix),
        MemoryRecallResponse,
    )
    (memory,) = found.memories
    assert memory.source_run == first.run_id and memory.scope.user == "ana"
    assert memory.scope.agent is None and memory.tags == ["ci"]
    stranger = new_submit(agent="rememberer", tenant=tenant, user="bob")
    memory_model.script(
        stranger.run_id,
        call("recall", query="why does test_checkout_total fail?"),
        call("final_answer", answer="no idea"),
    )
    unseen = (await run_to_end(mbus, stranger)).of_type("tool_result")[0]
    assert unseen.ok and unseen.output.startswith(NO_MEMORIES)


async def test_a_memory_service_error_is_a_failed_tool_result_and_the_run_goes_on(
    mbus, memory_model
):
    submit = new_submit(agent="rememberer", tenant=new_tenant())
    memory_model.script(
        submit.run_id,
        call("remember", text="too long " * 150, kind="fact"),
        call("final_answer", answer="could not keep it"),
    )

    record = await run_to_end(mbus, submit)

    result = record.of_type("tool_result")[0]
    assert not result.ok
    assert result.error.startswith("memory service: invalid_request"), result.error
    assert result.error.endswith("nothing was remembered")
    assert record.last.answer == "could not keep it"
    # The model read why in the next step.
    second = memory_model.requests_of(submit.run_id)[1]
    assert second.messages[-1].role == "tool" and "invalid_request" in second.messages[-1].content


async def test_without_a_memory_service_the_assistant_answers_and_says_the_recall_was_skipped(
    scripted_runner, scripted_model, scripted_bus
):
    submit = ask("Hello, who are you?", user="ana")
    scripted_model.script(submit.run_id, text("I am revo's assistant."))

    record = await run_to_end(scripted_bus, submit)

    assert record.types[-1] == "finished" and record.last.answer == "I am revo's assistant."
    result = record.of_type("tool_result")[0]
    assert not result.ok
    assert "memory service is not running" in result.error
    assert "nothing was recalled" in result.error
    system = scripted_model.requests_of(submit.run_id)[0].messages[0]
    assert RECALLED_HEADER not in system.content


def test_the_recall_scope_names_the_run_s_repository_however_it_was_written():
    def scope(repo: str | None, user: str | None = None) -> MemoryScope:
        ctx = ToolContext(
            workspace=Path("."),
            run_id="r1",
            tenant="acme",
            call_id="r1-m1",
            agent="assistant",
            user=user,
            repository=repo,
        )
        return recall_scope(ctx)

    assert scope("https://github.com/acme/api.git").repository == "github.com/acme/api"
    assert scope("git@github.com:acme/api.git").repository == "github.com/acme/api"
    assert scope("ssh://git@github.com/acme/api").repository == "github.com/acme/api"
    assert scope("github.com/acme/api/").repository == "github.com/acme/api"
    # A token in the URL never becomes part of a scope.
    tokened = scope("https://bot:s3cret@git.example.com:8443/acme/api.git").repository
    assert tokened == "git.example.com:8443/acme/api"
    assert scope(None).repository is None
    assert scope(None, user="ana@example.com").user == "ana@example.com"
    odd = scope(None, user="auth0|123").user
    assert odd == scope_value("auth0|123") and odd.startswith("sha256:") and odd != "auth0-123"
    assert scope(None).agent == "assistant"
