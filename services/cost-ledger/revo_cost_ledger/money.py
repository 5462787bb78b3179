"""Money units: pico-dollars inside the ledger (exact costs), micro-dollars on the wire."""

from __future__ import annotations

PICO_PER_USD = 10**12
PICO_PER_MICRO = 10**6


def micros(pico: int) -> int:
    """Pico-dollars to whole micro-dollars, half away from zero."""
    sign = -1 if pico < 0 else 1
    return sign * ((abs(pico) + PICO_PER_MICRO // 2) // PICO_PER_MICRO)


def pico(micros: int) -> int:
    return micros * PICO_PER_MICRO


def usd(pico: int) -> float:
    """For metrics and logs only: never for sums."""
    return pico / PICO_PER_USD
