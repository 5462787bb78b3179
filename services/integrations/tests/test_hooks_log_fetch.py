"""The log fetcher against a fake GitHub API: a log past the size limit keeps its head and
tail, read as it streams; the token never goes to the storage the API redirects to."""

from __future__ import annotations

import aiohttp
import pytest
from hooks_testkit import GITHUB_TOKEN, FakeGithub, serve

from revo_integrations.log_fetch import LogFetcher, LogFetchError


@pytest.fixture
async def fake_github():
    fake = FakeGithub()
    runner, fake.url = await serve(fake.app())
    yield fake
    await runner.cleanup()


async def test_a_log_over_the_limit_keeps_its_head_and_tail(fake_github):
    head, middle, tail = b"H" * 600, b"m" * 50_000, b"T" * 600
    fake_github.logs["5"] = head + middle + tail
    async with aiohttp.ClientSession() as session:
        fetched = await LogFetcher(session, max_bytes=1000).github_job_log(
            fake_github.url, GITHUB_TOKEN, "acme/shop", "5"
        )
    assert fetched.truncated
    assert fetched.data.startswith(b"H" * 500) and fetched.data.endswith(b"T" * 500)
    assert b"[... revo cut 50200 bytes from the middle of this log ...]" in fetched.data
    assert fake_github.calls == ["/repos/acme/shop/actions/jobs/5/logs", "/blob/5"]
    assert fake_github.refused == []


async def test_a_log_within_the_limit_is_whole_and_a_bad_token_is_a_permanent_error(fake_github):
    fake_github.logs["6"] = b"short log\n"
    async with aiohttp.ClientSession() as session:
        fetcher = LogFetcher(session, max_bytes=1000)
        fetched = await fetcher.github_job_log(fake_github.url, GITHUB_TOKEN, "acme/shop", "6")
        assert (fetched.data, fetched.truncated) == (b"short log\n", False)
        with pytest.raises(LogFetchError, match="HTTP 401") as refused:
            await fetcher.github_job_log(fake_github.url, "ghp_wrong", "acme/shop", "6")
    assert refused.value.permanent
