"""Times as people type them for reports: `7d`, `12h`, `30m` ago; an ISO date or date-time
(UTC unless it says otherwise); or a unix time. Shared by `revo cost` and `GET /v1/costs`."""

from __future__ import annotations

import datetime
import re
import time

# At most 9 digits: int() of thousands refuses with Python's own words, and no report
# goes back further than a billion days anyway.
_AGO = re.compile(r"^(\d{1,9})([dhm])$")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60}


def parse_when(text: str | None, now: float | None = None) -> float | None:
    """The unix time `text` names, None for None; ValueError saying what to write instead."""
    if text is None:
        return None
    now = time.time() if now is None else now
    ago = _AGO.match(text.strip())
    if ago:
        return now - int(ago.group(1)) * _UNIT_S[ago.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time: use 7d, 12h, 2026-11-01") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()
