"""One request to a service over NATS, for the CLI commands that make one (`revo cost`,
`revo budget`, `revo memory`, `revo keys`): connect, call, and turn every expected failure
into a message on stderr and an exit status.

Exit status: 0 done, 1 the service refused, 2 bad usage or nothing to talk to.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from revo_cli.state import connect_cli
from revo_core.bus import Bus
from revo_core.errors import BusUnauthorized, BusUnavailable, InvalidRequest, ServiceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


async def call_service(
    nats_url: str, service: str, command: Callable[[Bus], Awaitable[int]]
) -> int:
    """`command(bus)` against `service` (named in the message when none answers)."""
    try:
        bus = await connect_cli(nats_url)
    except BusUnauthorized as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    except BusUnavailable:
        return fail(f"cannot reach NATS at {nats_url}; is `revo up` running?", EXIT_USAGE)
    try:
        return await command(bus)
    except BusUnavailable:
        return fail(f"no {service} answers on NATS at {nats_url}", EXIT_USAGE)
    except InvalidRequest as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    except ServiceError as exc:
        return fail(f"error: {exc}")
    finally:
        await bus.close()


def fail(message: str, status: int = EXIT_FAILED) -> int:
    print(message, file=sys.stderr, flush=True)
    return status
