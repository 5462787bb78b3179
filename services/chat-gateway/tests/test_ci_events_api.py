"""`POST /v1/ci/events` and `revo publish` over a real gateway process and a real
nats-server: what a CI sends lands on CI_EVENTS as a CiEvent, its log inline or in CI_LOGS;
what is refused is answered with its typed error and publishes nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

import jsonschema
import msgspec
import pytest
from gateway_testkit import base_url, http

from revo_contracts import subjects
from revo_contracts.ci import INLINE_LOG_MAX_BYTES, CiEvent
from revo_contracts.gateway_http import CiEventBody
from revo_contracts.streams import CI_EVENTS
from revo_core.ci_logs import read_log
from revo_core.jetstream import ensure_streams
from revo_core.testing.fixtures import create_api_key

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def ci_gateway(scripted_nats, gateway_factory):
    """A gateway of its own: CI events need no agent-runner behind it."""
    return gateway_factory.start(scripted_nats.url, "gateway-ci")


@pytest.fixture
def tenant() -> str:
    return f"ci{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def ci_key(ci_gateway, scripted_bus, tenant) -> str:
    return await create_api_key(scripted_bus, tenant, "ci")


def post(
    gateway, key: str | None, raw: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict, object]:
    """(status, headers, parsed answer) of a POST of these exact bytes."""
    request = urllib.request.Request(f"{base_url(gateway)}/v1/ci/events", data=raw, method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


async def post_json(gateway, key, body, headers=None):
    return await asyncio.to_thread(post, gateway, key, json.dumps(body).encode(), headers)


async def events_of(bus, tenant: str) -> int:
    """How many events the stream holds for the tenant (every provider)."""
    info = await bus.js.stream_info(CI_EVENTS.name, subjects_filter=f"ci.events.{tenant}.>")
    return sum((info.state.subjects or {}).values())


async def last_event(bus, tenant: str, provider: str):
    """(the CiEvent, the message's headers) last published for the tenant and provider."""
    msg = await bus.js.get_last_msg(CI_EVENTS.name, subjects.ci_events(tenant, provider))
    return msgspec.json.decode(msg.data, type=CiEvent), msg.headers or {}


async def revo_publish(*args: str, env: dict[str, str], stdin: bytes | None = None):
    """`revo publish ARGS` as a CI step runs it: (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "revo_cli.main",
        "publish",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 120)
    return process.returncode, out.decode(), err.decode()


def ci_env(gateway, key: str | None, **variables: str) -> dict[str, str]:
    """The environment of a CI job: this Python's, no CI variables but `variables`."""
    ci_prefixes = ("GITHUB_", "CI_", "GITLAB", "BUILDKITE", "JENKINS", "JOB_NAME", "BUILD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ci_prefixes)}
    env["REVO_URL"] = base_url(gateway)
    env.pop("REVO_API_KEY", None)
    if key is not None:
        env["REVO_API_KEY"] = key
    env.update(variables)
    return env


def metric(gateway, name: str, **labels: str) -> float:
    """The value of one sample of the gateway's /metrics (0 before it is first counted)."""
    _, _, text = http("GET", f"{base_url(gateway)}/metrics")
    for line in str(text).splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def gzip_bomb(inflated_mb: int) -> bytes:
    """A valid gzip JSON body whose log inflates to `inflated_mb` MB, made a MB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    parts = [packer.compress(b'{"status": "failure", "log": "')]
    block = b"A" * MB
    parts += [packer.compress(block) for _ in range(inflated_mb)]
    parts.append(packer.compress(b'"}') + packer.flush())
    return b"".join(parts)


# -- accepted ------------------------------------------------------------------------------


async def test_a_ci_key_posts_an_event_whose_small_log_travels_inline_in_its_trace(
    ci_gateway, ci_key, scripted_bus, tenant
):
    accepted_before = metric(ci_gateway, "revo_ci_events_total", outcome="accepted")
    body = {
        "provider": "jenkins",
        "status": "failure",
        "repository": {"full_name": "acme/shop", "url": "https://git.example/acme/shop"},
        "commit_sha": "a" * 40,
        "branch": "main",
        "job": "unit-tests",
        "job_id": "unit-tests#41",
        "url": "https://jenkins.example/job/unit-tests/41/",
        "log": "collecting...\nFAILED tests/test_cart.py::test_total - assert 3 == 4\n",
    }
    status, _, answer = await post_json(ci_gateway, ci_key, body, {"traceparent": TRACEPARENT})

    assert status == 202, answer
    assert answer["subject"] == f"ci.events.{tenant}.jenkins"
    assert answer["log"] == {"inline": True, "truncated": False, "ref": None}
    assert answer["duplicate"] is False
    event, headers = await last_event(scripted_bus, tenant, "jenkins")
    assert event.event_id == answer["event_id"]
    assert event.tenant == tenant
    assert (event.provider, event.status, event.branch) == ("jenkins", "failure", "main")
    assert event.repository.full_name == "acme/shop"
    assert event.commit_sha == "a" * 40
    assert event.job_id == "unit-tests#41"
    assert event.log is not None and event.log.text == body["log"] and event.log.ref is None
    assert time.time() - event.received_at < 60
    assert headers["Nats-Msg-Id"] == f"api:{tenant}:{event.event_id}"
    # The HTTP server span's trace goes on with the event.
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    assert metric(ci_gateway, "revo_ci_events_total", outcome="accepted") == accepted_before + 1


async def test_revo_publish_from_github_actions_with_a_20_mb_log(
    ci_gateway, ci_key, scripted_bus, tenant, tmp_path: Path
):
    lines = [f"step {i:08d}: compiling module_{i % 977}.py ... ok\n" for i in range(460_000)]
    lines.append("Error: tests failed: 3 failed, 1200 passed\n")
    text = "".join(lines)
    assert 20 * MB <= len(text) < 21 * MB
    build_log = tmp_path / "build.log"
    build_log.write_text(text)
    env = ci_env(
        ci_gateway,
        ci_key,
        GITHUB_ACTIONS="true",
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_REPOSITORY="acme/shop",
        GITHUB_SHA="b" * 40,
        GITHUB_REF="refs/heads/release-2",
        GITHUB_REF_NAME="release-2",
        GITHUB_WORKFLOW="CI",
        GITHUB_JOB="tests",
        GITHUB_RUN_ID="777123",
        GITHUB_RUN_ATTEMPT="2",
    )

    started = time.monotonic()
    code, out, err = await revo_publish("--status", "failure", "--log", str(build_log), env=env)
    print(f"revo publish of a {len(text)}-byte log: {time.monotonic() - started:.2f} s")

    assert code == 0, err
    event, _ = await last_event(scripted_bus, tenant, "github")
    assert f"event {event.event_id} published to ci.events.{tenant}.github" in out
    assert event.repository.full_name == "acme/shop"
    assert event.repository.url == "https://github.com/acme/shop"
    assert event.commit_sha == "b" * 40
    assert (event.branch, event.ref) == ("release-2", "refs/heads/release-2")
    assert (event.workflow, event.workflow_id, event.job) == ("CI", "777123", "tests")
    assert event.run_attempt == 2
    assert event.url == "https://github.com/acme/shop/actions/runs/777123"
    assert event.status == "failure"
    assert event.log is not None and event.log.ref is not None and event.log.text is None
    assert event.log.ref.name == f"{tenant}/{event.event_id}.log.gz"
    assert event.log.ref.size == len(text.encode())
    assert await read_log(scripted_bus.js, tenant, event.log) == text

    # The step run again (a CI retrying it): the same job's attempt, stored once.
    code, out, err = await revo_publish("--status", "failure", "--log", str(build_log), env=env)
    assert code == 0, err
    assert f"event {event.event_id} already published" in out
    assert await events_of(scripted_bus, tenant) == 1


async def test_revo_publish_reads_stdin_and_flags_win_over_the_environment(
    ci_gateway, ci_key, scripted_bus, tenant
):
    env = ci_env(
        ci_gateway,
        ci_key,
        GITLAB_CI="true",
        CI_PROJECT_PATH="group/app",
        CI_PROJECT_URL="https://gitlab.example/group/app",
        CI_COMMIT_SHA="c" * 40,
        CI_COMMIT_REF_NAME="feature",
        CI_PIPELINE_ID="9001",
        CI_JOB_NAME="lint",
        CI_JOB_ID="55501",
        CI_JOB_URL="https://gitlab.example/group/app/-/jobs/55501",
        CI_MERGE_REQUEST_IID="17",
    )
    # Bytes that are not UTF-8: kept, each replaced by U+FFFD.
    stdin = b"lint: E501 line too long\n\xff\xfe broken bytes \xc3\x28\n"

    code, _, err = await revo_publish(
        "--status", "timed_out", "--log", "-", "--branch", "hotfix", "--job", "lint-strict",
        env=env, stdin=stdin,
    )  # fmt: skip

    assert code == 0, err
    event, _ = await last_event(scripted_bus, tenant, "gitlab")
    assert event.status == "timed_out"
    assert (event.branch, event.job) == ("hotfix", "lint-strict")  # the flags'
    assert event.repository.full_name == "group/app"
    assert (event.workflow_id, event.job_id, event.pr_number) == ("9001", "55501", 17)
    assert event.job_url == "https://gitlab.example/group/app/-/jobs/55501"
    assert event.log is not None
    assert event.log.text == stdin.decode("utf-8", errors="replace")
    assert "\ufffd\ufffd broken bytes \ufffd(" in event.log.text


async def test_a_gzip_body_is_inflated_and_its_large_log_goes_to_ci_logs(
    ci_gateway, ci_key, scripted_bus, tenant
):
    text = "".join(f"line {i}: npm ERR! code ELIFECYCLE\n" for i in range(20_000))
    assert len(text) > INLINE_LOG_MAX_BYTES
    raw = gzip.compress(
        json.dumps({"status": "failure", "provider": "buildkite", "log": text}).encode()
    )

    status, _, answer = await asyncio.to_thread(
        post, ci_gateway, ci_key, raw, {"Content-Encoding": "gzip"}
    )

    assert status == 202, answer
    assert answer["log"]["inline"] is False
    assert answer["log"]["ref"]["name"] == f"{tenant}/{answer['event_id']}.log.gz"
    event, _ = await last_event(scripted_bus, tenant, "buildkite")
    assert event.log is not None and event.log.ref == msgspec.convert(
        answer["log"]["ref"], type(event.log.ref)
    )
    assert await read_log(scripted_bus.js, tenant, event.log) == text


async def test_a_raw_body_whose_log_is_not_utf8_is_kept_with_replacement_characters(
    ci_gateway, ci_key, scripted_bus, tenant
):
    raw = b'{"status": "failure", "log": "ok\\n\xff\xfe\x80 garbage\\n"}'

    status, _, answer = await asyncio.to_thread(post, ci_gateway, ci_key, raw)

    assert status == 202, answer
    event, _ = await last_event(scripted_bus, tenant, "generic")
    assert event.log is not None and event.log.text == "ok\n\ufffd\ufffd\ufffd garbage\n"


async def test_a_retried_event_id_is_one_message_on_the_stream(
    ci_gateway, ci_key, scripted_bus, tenant
):
    body = {"status": "failure", "provider": "jenkins", "event_id": "build-42", "log": "boom"}
    first = await post_json(ci_gateway, ci_key, body)
    again = await post_json(ci_gateway, ci_key, body)

    assert first[0] == again[0] == 202, (first, again)
    assert (first[2]["duplicate"], again[2]["duplicate"]) == (False, True)
    assert first[2]["event_id"] == again[2]["event_id"] == "build-42"
    assert await events_of(scripted_bus, tenant) == 1
    # Another tenant's event of the same id is its own (the dedupe is per tenant).
    other = f"{tenant}x"
    other_key = await create_api_key(scripted_bus, other, "ci")
    status, _, answer = await post_json(ci_gateway, other_key, body)
    assert status == 202 and answer["duplicate"] is False
    assert await events_of(scripted_bus, other) == 1


# -- refused -------------------------------------------------------------------------------


async def test_a_gzip_bomb_is_refused_while_inflating_and_publishes_nothing(
    ci_gateway, ci_key, scripted_bus, tenant
):
    bomb = gzip_bomb(512)  # half a GB
    assert len(bomb) < 2 * MB
    refused_before = metric(ci_gateway, "revo_ci_events_total", outcome="refused", status="413")

    started = time.monotonic()
    status, _, answer = await asyncio.to_thread(
        post, ci_gateway, ci_key, bomb, {"Content-Encoding": "gzip"}
    )
    took = time.monotonic() - started

    assert status == 413, answer
    assert answer["error"]["code"] == "invalid_request"
    assert "after decompression" in answer["error"]["message"]
    # Refused after inflating the cap's worth, not the half gigabyte.
    print(f"gzip bomb ({len(bomb)} bytes, 512 MB inflated) refused in {took:.2f} s")
    assert took < 10, took
    assert await events_of(scripted_bus, tenant) == 0
    assert metric(ci_gateway, "revo_ci_events_total", outcome="refused", status="413") == (
        refused_before + 1
    )
    status, _, _ = await post_json(ci_gateway, ci_key, {"status": "success"})
    assert status == 202  # the gateway is fine


async def test_an_oversized_plain_body_is_refused_with_413(
    ci_gateway, ci_key, scripted_bus, tenant
):
    raw = json.dumps({"status": "failure", "log": "x" * (26 * MB)}).encode()

    status, _, answer = await asyncio.to_thread(post, ci_gateway, ci_key, raw)

    assert status == 413, answer
    assert await events_of(scripted_bus, tenant) == 0


@pytest.mark.parametrize(
    ("raw", "headers", "status", "says"),
    [
        (b'{"status": "failure", "log": ', {}, 400, "not valid JSON"),
        (b'{"provider": "jenkins", "log": "x"}', {}, 400, "`status`"),
        (b'{"status": "exploded"}', {}, 400, "$.status"),
        (b'{"status": "failure", "pr_number": "seven"}', {}, 400, "$.pr_number"),
        (b'{"status": "failure", "provider": "Not A Provider"}', {}, 400, "$.provider"),
        (b"[1, 2]", {}, 400, "Expected `object`"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400, "cannot read the body"),
        (b'{"status": "failure"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        (
            b'{"status": "failure"}',
            {"Content-Encoding": "compress"},
            415,
            "Content-Encoding 'compress'",
        ),
        (
            zlib.compress(b'{"status": "failure"}'),
            {"Content-Encoding": "deflate"},
            415,
            "Content-Encoding 'deflate'",
        ),
    ],
)
async def test_bad_bodies_are_refused_with_the_field_and_publish_nothing(
    ci_gateway, ci_key, scripted_bus, tenant, raw, headers, status, says
):
    answered, _, answer = await asyncio.to_thread(post, ci_gateway, ci_key, raw, headers)

    assert answered == status, answer
    assert answer["error"]["code"] == "invalid_request"
    assert says in answer["error"]["message"]
    assert await events_of(scripted_bus, tenant) == 0


async def test_who_may_publish(ci_gateway, scripted_bus, tenant):
    body = {"status": "failure", "log": "x"}
    viewer = await create_api_key(scripted_bus, tenant, "viewer")

    status, _, answer = await post_json(ci_gateway, viewer, body)
    assert status == 403 and answer["error"]["code"] == "forbidden", answer
    status, _, answer = await post_json(ci_gateway, None, body)
    assert status == 401 and answer["error"]["code"] == "unauthorized", answer
    status, _, answer = await post_json(ci_gateway, "revo_0123456789abcdef_wrong", body)
    assert status == 401, answer
    assert await events_of(scripted_bus, tenant) == 0

    for role in ("member", "admin"):
        key = await create_api_key(scripted_bus, tenant, role)
        status, _, answer = await post_json(ci_gateway, key, body)
        assert status == 202, (role, answer)
    assert await events_of(scripted_bus, tenant) == 2


async def test_a_body_naming_another_tenant_is_refused(ci_gateway, ci_key, scripted_bus, tenant):
    victim = f"{tenant}v"
    status, _, answer = await post_json(
        ci_gateway, ci_key, {"status": "failure", "tenant": victim, "log": "forged"}
    )

    assert status == 403, answer
    assert answer["error"]["code"] == "forbidden"
    assert re.search(r"not the key's tenant", answer["error"]["message"])
    assert await events_of(scripted_bus, victim) == 0
    assert await events_of(scripted_bus, tenant) == 0
    # Its own tenant named: fine.
    status, _, answer = await post_json(ci_gateway, ci_key, {"status": "failure", "tenant": tenant})
    assert status == 202, answer


async def test_revo_publish_says_clearly_what_went_wrong(
    ci_gateway, scripted_bus, tenant, tmp_path
):
    build_log = tmp_path / "build.log"
    build_log.write_text("boom\n")
    args = ("--status", "failure", "--log", str(build_log))

    code, _, err = await revo_publish(*args, env=ci_env(ci_gateway, None))
    assert code == 2 and "REVO_API_KEY is not set" in err

    code, _, err = await revo_publish(
        "--status", "failure", "--log", str(tmp_path / "missing.log"), env=ci_env(ci_gateway, "k")
    )
    assert code == 2 and "cannot read the log" in err

    viewer = await create_api_key(scripted_bus, tenant, "viewer")
    code, _, err = await revo_publish(*args, env=ci_env(ci_gateway, viewer))
    assert code == 1 and "revo refused the event (403)" in err and "viewer" in err

    code, _, err = await revo_publish(
        *args, "--revo-url", "http://127.0.0.1:9", env=ci_env(ci_gateway, viewer)
    )
    assert code == 3 and "cannot reach revo at http://127.0.0.1:9" in err
    assert "gave up after" in err


def test_the_body_has_every_field_of_the_event_but_those_the_gateway_fills():
    body_fields = set(CiEventBody.__struct_fields__)
    event_fields = set(CiEvent.__struct_fields__)

    assert event_fields - body_fields == {"received_at"}
    assert body_fields - event_fields == set()


async def test_the_answer_is_the_documented_one(ci_gateway, ci_key):
    _, _, document = await asyncio.to_thread(http, "GET", f"{base_url(ci_gateway)}/openapi.json")
    operation = document["paths"]["/v1/ci/events"]["post"]
    schema = {**operation["responses"]["202"]["content"]["application/json"]["schema"], **document}

    status, _, answer = await post_json(ci_gateway, ci_key, {"status": "success", "log": "ok"})

    assert status == 202
    jsonschema.Draft202012Validator(schema).validate(answer)
    assert operation["x-revo-roles"] == ["admin", "member", "ci"]
    assert {"400", "401", "403", "413", "415"} <= set(operation["responses"])


async def test_no_stream_to_store_the_event_is_a_503_to_retry(
    ci_gateway, ci_key, scripted_bus, tenant
):
    body = {"status": "failure", "event_id": "while-away", "log": "x"}
    await scripted_bus.js.delete_stream(CI_EVENTS.name)
    try:
        status, headers, answer = await post_json(ci_gateway, ci_key, body)
    finally:
        await ensure_streams(scripted_bus.js, (CI_EVENTS,))

    assert status == 503, answer
    assert answer["error"]["code"] == "overloaded"
    assert headers["Retry-After"] == "2"
    status, _, answer = await post_json(ci_gateway, ci_key, body)  # the CI's retry
    assert status == 202 and answer["duplicate"] is False, answer
    assert await events_of(scripted_bus, tenant) == 1
