"""Taking up, at start, the chat runs a stopped replica was following.

A run goes on in the agent-runner when the replica that submitted it stops (killed, or
shut down mid-run); its items were stored only by that replica's follow task. So each
replica, as it starts, adopts every recent run whose ending is not stored in its session:
it follows the run from its replayable log in RUN_EVENTS to its end and stores what is
missing (the store skips what is there, so replicas adopting one run at once, or the
replica still following it, never double an item). A client resuming the session gets
the answer through its normal replay, or live when it is back first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

from revo_chat_gateway import metrics
from revo_core.logging import get_logger

if TYPE_CHECKING:
    from revo_chat_gateway.ws_chat import ChatHub

log = get_logger("revo.chat_gateway.adoption")
_tracer = trace.get_tracer("revo.chat_gateway")


async def adopt_open_runs(hub: ChatHub, within_s: float) -> int:
    """Follow the open runs of the last `within_s` seconds not followed here; how many."""
    # The follow tasks start inside the span: the items they store keep its context.
    with _tracer.start_as_current_span("adopt chat runs") as span:
        try:
            runs = await hub.store.open_runs(within_s)
        except Exception:  # Postgres away: the runs wait for the next start
            log.exception("open chat runs could not be read")
            return 0
        adopted = 0
        for run in runs:
            try:
                if await hub.adopt(run):
                    adopted += 1
                    log.info("chat run adopted", run_id=run.run_id, session_id=run.session_id)
            except Exception:
                log.exception("a chat run was not adopted", run_id=run.run_id)
        span.set_attribute("revo.runs_adopted", adopted)
        metrics.RUNS_ADOPTED.inc(adopted)
        if runs:
            log.info("chat runs adopted", adopted=adopted, open=len(runs))
        return adopted
