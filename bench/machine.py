"""The machine a bench ran on, in one line: CPU model, cores, the vector extensions that
decide CPU inference speed, and the load other processes put on it meanwhile. Printed
beside a bench's figures so a number is read against the machine that gave it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags that change how fast the CPU runs a model (vLLM's CPU kernels, numpy, pgvector).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of SPEED_FLAGS it has (Linux's /proc/cpuinfo)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in info.splitlines())
        if key.strip() in ("model name", "flags")
    )
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", platform.machine()), [f for f in SPEED_FLAGS if f in flags]


def machine_line() -> str:
    model, flags = cpu_model_and_flags()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"CPU {model}, {os.cpu_count()} cores, flags {' '.join(flags) or '(none of note)'}; "
        f"load average {load} (1, 5, 15 min)"
    )
