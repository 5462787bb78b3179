"""Why the GitHub notification channel speaks aiohttp and not githubkit's client: the CPU of
one call (a PR comment to a local server, so the network costs nothing) and the memory of
importing githubkit, beside a plain aiohttp call in the same run.

    python bench/integrations_github_client.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from machine import machine_line

from revo_core.embedded.ports import free_port


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


async def comment(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"id": 1, "body": "x"}, status=201)


async def bench(calls: int) -> None:
    before = rss_mb()
    started = time.perf_counter()
    from githubkit import GitHub, TokenAuthStrategy

    imported_s = time.perf_counter() - started
    port = free_port()
    app = web.Application()
    app.router.add_post("/repos/{owner}/{repo}/issues/{number}/comments", comment)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    github = GitHub(TokenAuthStrategy("t"), base_url=base, auto_retry=False)
    async with github:
        await github.rest.issues.async_create_comment("o", "r", 1, body="warm-up")
        cpu = time.process_time()
        for _ in range(calls):
            answer = await github.rest.issues.async_create_comment("o", "r", 1, body="hi")
            assert answer.json()["id"] == 1
        githubkit_ms = (time.process_time() - cpu) / calls * 1e3
    grown = rss_mb() - before
    async with aiohttp.ClientSession() as session:
        cpu = time.process_time()
        for _ in range(calls):
            url = f"{base}/repos/o/r/issues/1/comments"
            headers = {"Authorization": "Bearer t"}
            async with session.post(url, json={"body": "hi"}, headers=headers) as answer:
                assert (await answer.json())["id"] == 1
        aiohttp_ms = (time.process_time() - cpu) / calls * 1e3
    await runner.cleanup()
    print(f"\n{machine_line()}")
    print(f"githubkit: import {imported_s:.2f} s, +{grown:.0f} MB RSS after its first call")
    print(
        f"CPU per call (this process, the local server's included): githubkit "
        f"{githubkit_ms:.2f} ms, aiohttp {aiohttp_ms:.2f} ms ({githubkit_ms / aiohttp_ms:.1f} x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(bench(parser.parse_args().calls))
