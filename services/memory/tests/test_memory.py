"""The memory service with real NATS, Postgres + pgvector and the real embedding model."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import msgspec
import pytest
from memory_testkit import (
    SUMMARY_RETENTION_S,
    forget,
    history,
    new_tenant,
    raw,
    recall,
    rows_of,
    store,
    texts,
)
from opentelemetry import trace

from revo_contracts import subjects
from revo_contracts.memory import MemoryFilter, MemoryScope
from revo_core import headers as h
from revo_core.errors import InvalidRequest, NotFound
from revo_core.testing.metrics import metric_value

FIXES = (
    "test_parse_header fails on Windows: CRLF line endings are kept; fix: open the file "
    "with newline=''.",
    "test_parse_headers_folded fails: header parsing breaks when a header is folded over "
    "two lines.",
    "Header parsing test failures are usually caused by whitespace at the end of the header line.",
    "The parse header test broke after the tokenizer change; revert commit 1a2b3c.",
    "Error E1234 means the upstream registry refused the push: the token has expired.",
    "Error E1243 means the build cache is corrupt: clear it with make clean.",
    "Pushing to the registry fails when the credentials have expired; log in again.",
)


def scope(**fields) -> MemoryScope:
    return MemoryScope(tenant=fields.pop("tenant", None) or new_tenant(), **fields)


# -- recall ---------------------------------------------------------------------------------


async def test_paraphrases_find_each_other(mbus):
    where = scope()
    await store(
        mbus,
        where,
        "The CI pipeline runs the unit tests with pytest on four parallel workers.",
        "Alice likes her code reviews short and wants them before noon.",
        "Deployments to production happen every Tuesday after the standup.",
    )

    tests = await recall(mbus, where, "How are tests executed in continuous integration?")
    reviews = await recall(mbus, where, "What does Alice prefer for reviewing pull requests?")
    releases = await recall(mbus, where, "When do we ship to prod?")

    assert texts(tests)[0].startswith("The CI pipeline")
    assert texts(reviews)[0].startswith("Alice likes")
    assert texts(releases)[0].startswith("Deployments")
    assert tests.memories[0].score > tests.memories[1].score  # best first


async def test_exact_identifiers_win_through_the_keyword_path_where_vectors_rank_them_lower(
    mbus,
):
    where = scope()
    await store(mbus, where, *FIXES)

    by_test_name = await recall(mbus, where, "test_parse_header", top_k=4)
    by_error_code = await recall(mbus, where, "what does error E1234 mean", top_k=4)

    for found, exact in ((by_test_name, FIXES[0]), (by_error_code, FIXES[4])):
        best = found.memories[0]
        assert best.text == exact
        assert best.keyword == 1.0
        # Vector similarity alone would rank another memory above the exact one.
        assert max(m.similarity for m in found.memories) > best.similarity


async def test_results_are_cut_to_the_token_budget_best_first(mbus):
    where = scope()
    await store(mbus, where, *FIXES)
    everything = await recall(mbus, where, "test failures", top_k=7)
    first_two = sum(m.tokens for m in everything.memories[:2])

    cut = await recall(mbus, where, "test failures", top_k=7, token_budget=first_two)

    assert texts(cut) == texts(everything)[:2]
    assert cut.tokens == first_two and cut.truncated
    assert all(m.tokens == -(-len(m.text) // 4) for m in cut.memories)  # ceil(chars / 4)
    assert not everything.truncated


async def test_top_k_and_min_score_bound_what_comes_back(mbus):
    where = scope()
    await store(mbus, where, *FIXES)

    three = await recall(mbus, where, "registry push", top_k=3)
    confident = await recall(mbus, where, "registry push", min_score=0.3)

    assert len(three.memories) == 3
    assert confident.memories and all(m.score >= 0.3 for m in confident.memories)
    assert len(confident.memories) < len(FIXES)


async def test_filters_narrow_recall_by_kind_tags_time_and_source_run(mbus):
    where = scope()
    await store(mbus, where, "Use ruff for linting Python code.", kind="preference",
                tags=["python", "lint"])  # fmt: skip
    await store(mbus, where, "The flaky test is test_upload_retry; rerun it once.", kind="fix",
                tags=["python", "flaky"], source_run="run-42")  # fmt: skip
    middle = time.time()
    await asyncio.sleep(0.05)
    await store(mbus, where, "Go services are linted with golangci-lint.", kind="fact",
                tags=["go", "lint"])  # fmt: skip
    query = "how do we lint and fix python tests"

    def only(**fields) -> MemoryFilter:
        return MemoryFilter(**fields)

    fixes = await recall(mbus, where, query, filter=only(kinds=["fix"]))
    python_lint = await recall(mbus, where, query, filter=only(tags=["python", "lint"]))
    recent = await recall(mbus, where, query, filter=only(since=middle))
    older = await recall(mbus, where, query, filter=only(until=middle))
    from_run = await recall(mbus, where, query, filter=only(source_run="run-42"))

    assert texts(fixes) == ["The flaky test is test_upload_retry; rerun it once."]
    assert texts(python_lint) == ["Use ruff for linting Python code."]
    assert texts(recent) == ["Go services are linted with golangci-lint."]
    assert len(older.memories) == 2 and "Go services" not in " ".join(texts(older))
    assert texts(from_run) == texts(fixes)


# -- store: dedupe and history ----------------------------------------------------------------


async def test_a_memory_that_says_the_same_updates_the_existing_one_and_keeps_its_history(
    mbus,
):
    where = scope(repository="acme/api")
    first = await store(mbus, where, "The CI uses pytest with xdist on 4 workers.",
                        tags=["ci"], source_run="run-1")  # fmt: skip
    again = await store(mbus, where, "CI runs pytest with xdist using 4 workers.",
                        tags=["pytest"], source_run="run-2")  # fmt: skip
    same = await store(mbus, where, "CI runs pytest with xdist using 4 workers.")

    [created], [updated], [unchanged] = first.stored, again.stored, same.stored
    assert created.action == "created" and created.version == 1
    assert updated.action == "updated" and updated.id == created.id and updated.version == 2
    assert updated.similarity >= 0.9
    assert unchanged.action == "unchanged" and unchanged.version == 2
    found = await recall(mbus, where, "pytest workers in CI")
    assert texts(found) == ["CI runs pytest with xdist using 4 workers."]
    assert found.memories[0].tags == ["ci", "pytest"] and found.memories[0].version == 2
    versions = (await history(mbus, where, created.id)).versions
    assert [(v.version, v.action, v.source_run) for v in versions] == [
        (1, "created", "run-1"),
        (2, "updated", "run-2"),
    ]
    assert versions[0].text == "The CI uses pytest with xdist on 4 workers."


async def test_near_duplicates_in_one_batch_become_one_memory(mbus):
    where = scope()

    stored = await store(
        mbus,
        where,
        "Deploys happen on Tuesdays.",
        "Deployments happen every Tuesday.",
        "The staging database is reset nightly.",
    )

    first, second, third = stored.stored
    assert second.id == first.id and second.action == "updated" and second.version == 2
    assert third.action == "created" and third.id != first.id
    assert len((await history(mbus, where, first.id)).versions) == 2


async def test_concurrent_stores_of_one_fact_leave_a_single_memory(mbus, postgres):
    where = scope()
    sayings = [
        "The release branch is cut every Friday.",
        "Every Friday the release branch gets cut.",
        "We cut the release branch on Fridays.",
        "The release branch is cut each Friday.",
    ] * 2

    results = await asyncio.gather(*(store(mbus, where, text) for text in sayings))

    assert len({r.stored[0].id for r in results}) == 1
    assert sum(r.stored[0].action == "created" for r in results) == 1
    conn = await asyncpg.connect(postgres.dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM memory.memories WHERE tenant = $1", where.tenant
        )
    finally:
        await conn.close()
    assert count == 1


async def test_the_same_text_in_another_scope_is_another_memory(mbus):
    tenant = new_tenant()
    api, web = (
        scope(tenant=tenant, repository="acme/api"),
        scope(tenant=tenant, repository="acme/web"),
    )

    one = await store(mbus, api, "Run make lint before pushing.")
    two = await store(mbus, web, "Run make lint before pushing.")

    assert two.stored[0].action == "created" and two.stored[0].id != one.stored[0].id


# -- scopes, tenants, forget, expiry ----------------------------------------------------------


async def test_a_call_sees_tenant_wide_memories_and_only_its_own_narrower_ones(mbus):
    tenant = new_tenant()
    await store(mbus, scope(tenant=tenant), "The team writes commit messages in English.")
    await store(mbus, scope(tenant=tenant, user="alice"), "Alice wants answers in French.")
    await store(mbus, scope(tenant=tenant, user="bob"), "Bob wants answers in German.")
    query = "which language should answers be in"

    alice = texts(await recall(mbus, scope(tenant=tenant, user="alice"), query))
    anyone = texts(await recall(mbus, scope(tenant=tenant), query))

    assert sorted(alice) == ["Alice wants answers in French.",
                             "The team writes commit messages in English."]  # fmt: skip
    assert anyone == ["The team writes commit messages in English."]


async def test_no_call_reaches_another_tenants_memories(mbus):
    mine, theirs = scope(), scope()
    [secret] = (await store(mbus, theirs, "The deploy key lives in vault path ops/deploy.")).stored

    found = await recall(mbus, mine, "where is the deploy key")
    same_text = await store(mbus, mine, "The deploy key lives in vault path ops/deploy.")
    forgotten = await forget(mbus, mine, ids=[secret.id])
    forgotten_all = await forget(mbus, mine, filter=MemoryFilter())
    with pytest.raises(NotFound):
        await history(mbus, mine, secret.id)

    assert found.memories == []
    assert same_text.stored[0].action == "created" and same_text.stored[0].id != secret.id
    assert forgotten.forgotten == 0 and forgotten_all.ids == [same_text.stored[0].id]
    assert texts(await recall(mbus, theirs, "where is the deploy key")) == [
        "The deploy key lives in vault path ops/deploy."
    ]


async def test_forget_by_id_and_by_filter(mbus):
    where = scope(repository="acme/api")
    stored = await store(mbus, where, "Use tabs in the Makefile.", "Flaky: test_socket_timeout.",
                         "Python 3.11 is the minimum version.", kind="fact")  # fmt: skip
    await store(mbus, where, "Retry the upload test once.", kind="fix", tags=["flaky"])
    tabs, _, _ = stored.stored

    by_id = await forget(mbus, where, ids=[tabs.id])
    by_filter = await forget(mbus, where, filter=MemoryFilter(kinds=["fix"], tags=["flaky"]))

    assert by_id.ids == [tabs.id] and by_filter.forgotten == 1
    left = texts(await recall(mbus, where, "makefile tabs flaky upload python", top_k=10))
    assert sorted(left) == ["Flaky: test_socket_timeout.", "Python 3.11 is the minimum version."]
    with pytest.raises(NotFound):
        await history(mbus, where, tabs.id)


async def test_memories_of_a_kind_with_retention_expire_and_are_purged(mbus, postgres, memory):
    where = scope()
    await store(mbus, where, "Yesterday's run summary: 3 tests failed in CI.", kind="summary")
    await store(mbus, where, "CI failures are posted to the #ci channel.", kind="fact")
    query = "CI failures summary"
    before = await recall(mbus, where, query)
    expiring = [m for m in before.memories if m.expires_at is not None]

    after = before
    deadline = time.monotonic() + SUMMARY_RETENTION_S + 10
    while len(after.memories) > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        after = await recall(mbus, where, query)

    assert len(before.memories) == 2 and [m.kind for m in expiring] == ["summary"]
    assert expiring[0].expires_at - expiring[0].updated_at == pytest.approx(SUMMARY_RETENTION_S)
    assert texts(after) == ["CI failures are posted to the #ci channel."]
    for _ in range(50):  # the purge runs every 0.5 s here
        if await rows_of(postgres.dsn, where.tenant) == 2:  # the fact and its one version
            break
        await asyncio.sleep(0.1)
    assert await rows_of(postgres.dsn, where.tenant) == 2
    assert metric_value(memory, "revo_memory_expired_total") >= 1


# -- bad input --------------------------------------------------------------------------------

GOOD_SCOPE = {"tenant": "acme"}


@pytest.mark.parametrize(
    ("subject", "request_body", "field"),
    [
        (subjects.MEMORY_STORE, {"scope": GOOD_SCOPE, "memories": [{"text": ""}]},
         "memories[0].text"),
        (subjects.MEMORY_STORE, {"scope": GOOD_SCOPE, "memories": [{"text": "  \n "}]},
         "memories[0].text"),
        (subjects.MEMORY_STORE, {"scope": GOOD_SCOPE, "memories": [{"text": "x" * 2001}]},
         "memories[0].text"),
        (subjects.MEMORY_STORE, {"scope": GOOD_SCOPE, "memories": []}, "memories"),
        (subjects.MEMORY_STORE, {"scope": {"repository": "a/b"}, "memories": [{"text": "x"}]},
         "scope.tenant"),
        (subjects.MEMORY_STORE, {"scope": {"tenant": "a.b"}, "memories": [{"text": "x"}]},
         "scope.tenant"),
        (subjects.MEMORY_STORE, {"scope": GOOD_SCOPE, "memories": [{"text": "x",
         "kind": "rumour"}]}, "memories[0].kind"),
        (subjects.MEMORY_RECALL, {"scope": {}, "query": "x"}, "scope.tenant"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": ""}, "query"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": "x" * 2001}, "query"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": "x", "top_k": 51}, "top_k"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": "x", "top_k": 0}, "top_k"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": "x",
         "filter": {"kind": ["fix"]}}, "filter"),
        (subjects.MEMORY_RECALL, {"scope": {"tenant": "acme", "team": "x"}, "query": "x"},
         "scope"),
        (subjects.MEMORY_RECALL, {"scope": GOOD_SCOPE, "query": "x",
         "filter": {"since": 20, "until": 10}}, "filter.since"),
        (subjects.MEMORY_FORGET, {"scope": GOOD_SCOPE}, None),
        (subjects.MEMORY_FORGET, {"scope": GOOD_SCOPE, "ids": ["not-an-id"]}, "ids[0]"),
        (subjects.MEMORY_HISTORY, {"scope": {}, "id": str(uuid.uuid4())}, "scope.tenant"),
    ],
)  # fmt: skip
async def test_bad_input_is_an_invalid_request_naming_the_field(mbus, subject, request_body, field):
    reply = await raw(mbus, subject, msgspec.json.encode(request_body))

    assert reply.headers[h.ERROR_CODE] == "invalid_request", reply.data
    body = msgspec.json.decode(reply.data)
    assert body["code"] == "invalid_request" and body["message"]
    assert body["details"].get("field") == field


async def test_a_typed_caller_gets_invalid_request_as_its_exception(mbus):
    with pytest.raises(InvalidRequest, match="top_k 60 is above the maximum of 50"):
        await recall(mbus, scope(), "anything", top_k=60)


# -- tracing ----------------------------------------------------------------------------------


async def test_one_trace_runs_from_the_caller_through_memory_into_inference_embed(
    mbus, otlp_receiver
):
    query = f"what did we learn about flaky uploads {uuid.uuid4().hex}"  # not cached
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        await recall(mbus, scope(), query)
    trace_id = format(caller.get_span_context().trace_id, "032x")

    def wait(name: str):
        return otlp_receiver.wait_for(trace_id, name)

    recall_span = await asyncio.to_thread(wait, "memory.recall process")
    embed_call = await asyncio.to_thread(wait, "inference.embed publish")
    embed_span = await asyncio.to_thread(wait, "inference.embed process")

    assert recall_span.service == "memory" and recall_span.parent_span_id
    assert embed_call.service == "memory" and embed_call.parent_span_id == recall_span.span_id
    assert embed_span.service == "inference" and embed_span.parent_span_id == embed_call.span_id
    assert recall_span.attributes["revo.memory.count"] == 0
