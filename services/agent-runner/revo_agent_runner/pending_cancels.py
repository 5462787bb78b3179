"""Cancels of runs this replica does not hold (yet), kept for a short while.

A cancel sent right after a submit can reach the runner while the run's claim is being
made: the claim's look into `agents.controls` may come before the recorder's insert. So
every replica also keeps such cancels in memory, and the replica that then claims the run
applies it. Bounded in count and age: cancels of runs claimed elsewhere or ended go.
"""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_RUNS = 10_000
MAX_AGE_S = 120.0


class PendingCancels:
    def __init__(self, max_runs: int = MAX_RUNS, max_age_s: float = MAX_AGE_S) -> None:
        self._max_runs = max_runs
        self._max_age_s = max_age_s
        self._by_run: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def keep(self, run_id: str, reason: str) -> None:
        self._expire()
        self._by_run.setdefault(run_id, (time.monotonic(), reason or "cancelled"))
        while len(self._by_run) > self._max_runs:
            self._by_run.popitem(last=False)

    def take(self, run_id: str) -> str | None:
        """The reason of the run's kept cancel, if any (and forgets it)."""
        self._expire()
        kept = self._by_run.pop(run_id, None)
        return kept[1] if kept else None

    def _expire(self) -> None:
        oldest = time.monotonic() - self._max_age_s
        while self._by_run and next(iter(self._by_run.values()))[0] < oldest:
            self._by_run.popitem(last=False)
