"""Reading a service's /metrics in tests."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request


def metric_value(service, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, read from /metrics."""
    with urllib.request.urlopen(service.metrics_url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def wait_for_metric(
    service, name: str, expected: float, timeout: float = 10.0, **labels
) -> float:
    """Poll /metrics without blocking the event loop (the bus must keep flushing)."""
    end = time.monotonic() + timeout
    value = metric_value(service, name, **labels)
    while value != expected and time.monotonic() < end:
        await asyncio.sleep(0.1)
        value = metric_value(service, name, **labels)
    return value
