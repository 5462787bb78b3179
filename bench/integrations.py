"""The integrations service's benchmarks, one after the other, each with its same-run
baseline (issue 15): webhook ingest (bench/integrations_ingest.py: signature check, dedupe,
JetStream publish ack, against a bare aiohttp handler) and notification delivery
(bench/integrations_notify.py: a local sink, healthy and failing 30% of calls, against bare
posts to the same sink). Each runs in its own process with its own NATS and Postgres.

    python bench/integrations.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PARTS = ("integrations_ingest.py", "integrations_notify.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the parts' own --quick")
    args = parser.parse_args()
    here = Path(__file__).parent
    failed = 0
    for part in PARTS:
        print(f"\n=== {part} ===", flush=True)
        command = [sys.executable, str(here / part), *(["--quick"] if args.quick else [])]
        failed += subprocess.run(command, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
