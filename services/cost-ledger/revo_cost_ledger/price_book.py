"""The price table in force, reloaded when its file changes, on SIGHUP, or on request.

A reload that fails (bad YAML, a bad price, an unreadable file) leaves the last good
table in force: it is logged, counted, and `revo_ledger_price_table_ok` reads 0 until a
good table loads. Only the start-up load may fail the service, as there is no last good.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

from revo_contracts.ledger import PricesInfo
from revo_core.logging import get_logger
from revo_cost_ledger import metrics
from revo_cost_ledger.prices import PriceTable, PriceTableError, load_price_table

log = get_logger("revo.cost_ledger.prices")


class PriceBook:
    def __init__(self, path: Path, check_every_s: float = 2.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._table: PriceTable | None = None
        self._seen: tuple[int, int] | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def table(self) -> PriceTable:
        assert self._table is not None, "load() first"
        return self._table

    def load(self) -> PriceTable:
        """Load the file now; on failure keep the table in force and raise."""
        seen = self._stat()
        try:
            table = load_price_table(self.path, time.time())
        except (PriceTableError, OSError) as exc:
            self._seen = seen  # don't retry the same broken file every tick
            self.last_error, self.last_error_at = str(exc), time.time()
            metrics.PRICE_LOADS.labels("rejected").inc()
            metrics.PRICE_TABLE_OK.set(0)
            log.error("price table rejected; the last good one stays in force", error=str(exc))
            raise
        self._table, self._seen = table, seen
        self.last_error = self.last_error_at = None
        metrics.PRICE_LOADS.labels("loaded").inc()
        metrics.PRICE_TABLE_OK.set(1)
        log.info(
            "price table loaded",
            version=table.version,
            path=str(self.path),
            reference=table.reference,
            cloud=len(table.cloud),
            local=len(table.local),
        )
        return table

    def reload(self) -> None:
        with contextlib.suppress(PriceTableError, OSError):
            self.load()

    def info(self) -> PricesInfo:
        table = self.table
        return PricesInfo(
            version=table.version,
            path=table.path,
            loaded_at=table.loaded_at,
            reference_model=table.reference,
            cloud_models=sorted(table.cloud),
            local_models=sorted(table.local),
            last_error=self.last_error,
            last_error_at=self.last_error_at,
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self._watch = asyncio.create_task(self._watch_file(), name="price-table-watch")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._watch is not None:
            self._watch.cancel()

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the price table")
        self.reload()

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_s)
            if self._stat() != self._seen:
                self.reload()

    def _stat(self) -> tuple[int, int] | None:
        """(mtime in ns, size): a change of either means the file was rewritten."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size
