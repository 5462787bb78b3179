"""Schemathesis against the running gateway's /openapi.json: every operation, SSE included,
with a valid API key: no 5xx, and no answer outside the document (status, content type,
headers, body; each event of a stream).

Derandomized (a fixed seed, deterministic generation) and bounded in examples, so a run in
CI is the same run every time, within about two minutes."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from gateway_testkit import base_url, scripted_default

from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Script, text

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
FUZZ_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def fuzzed_gateway(scripted_nats, scripted_runner, scripted_ledger, gateway_factory):
    """A gateway whose limits the fuzzer's request rate does not reach: what it checks
    is the answers, not the 429s (tested on their own)."""
    return gateway_factory.start(
        scripted_nats.url,
        "gateway-fuzzed",
        REVO_CHAT_GATEWAY_RATE_LIMIT_PER_MINUTE="1000000",
        REVO_CHAT_GATEWAY_NEW_SESSIONS_PER_MINUTE="1000000",
        REVO_CHAT_GATEWAY_MAX_CONCURRENT_RUNS="64",
        REVO_CHAT_GATEWAY_RUN_TIMEOUT_S="30",
    )


async def test_every_operation_answers_within_its_documented_schema(
    fuzzed_gateway, scripted_bus, scripted_model, tmp_path
):
    # An admin: the role every operation lets in (permissions.py), so none answers only 403.
    key = await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}", role="admin")
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url(fuzzed_gateway)}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "NO_COLOR": "1"}

    with scripted_default(scripted_model, Script([text("Fuzzed, and fine")])):
        fuzzer = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(fuzzer.communicate(), FUZZ_TIMEOUT_S)

    report = output.decode(errors="replace")
    print(report)  # shown by pytest -s or on failure: what was tried, per operation
    assert fuzzer.returncode == 0, report[-12_000:]
