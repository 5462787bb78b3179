"""A tiny revo service for the shutdown test: streams numbers slowly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
from aiohttp import web

from revo_core.endpoints import Endpoints
from revo_core.service import BUS, create_service_app, run_service
from revo_core.settings import ServiceSettings


class Count(msgspec.Struct):
    to: int
    pause: float = 0.1


class Number(msgspec.Struct):
    n: int


async def count(request: Count) -> AsyncIterator[Number]:
    for n in range(request.to):
        await asyncio.sleep(request.pause)
        yield Number(n=n)


def build(settings: ServiceSettings) -> web.Application:
    app = create_service_app("drain-test", settings)

    async def endpoints_ctx(app: web.Application) -> AsyncIterator[None]:
        endpoints = Endpoints(app[BUS], "drain-test")
        await endpoints.start()
        await endpoints.add_stream("count", "test.drain.count", Count, count)
        yield
        await endpoints.stop(grace=settings.drain_grace_s)

    app.cleanup_ctx.append(endpoints_ctx)
    return app


if __name__ == "__main__":
    run_service("drain-test", ServiceSettings(), build)
