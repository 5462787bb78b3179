"""Times as people type them for reports: `7d`, `12h`, `30m` ago; an ISO date or date-time
(UTC unless it says otherwise); or a unix time. Shared by `revo cost` and `GET /v1/costs`.
Durations (`30d`, `12h`, `90m`: how long a key or credential stays valid) read the same way."""

from __future__ import annotations

import datetime
import re
import time

# At most 9 digits: int() of thousands refuses with Python's own words, and no report
# goes back further than a billion days anyway.
_AGO = re.compile(r"^(\d{1,9})([dhm])$")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60}


def duration_s(text: str) -> int | None:
    """Seconds in `30d`, `12h` or `90m`; None when `text` is not such a duration."""
    found = _AGO.match(text.strip())
    return int(found.group(1)) * _UNIT_S[found.group(2)] if found else None


def parse_when(text: str | None, now: float | None = None) -> float | None:
    """The unix time `text` names, None for None; ValueError saying what to write instead."""
    if text is None:
        return None
    now = time.time() if now is None else now
    ago = duration_s(text)
    if ago is not None:
        return now - ago
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
