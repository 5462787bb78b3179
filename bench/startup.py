"""Time from `revo up` to ready, against the bare vLLM engine load it contains.

Runs `revo up` in a scratch state directory (free ports when the defaults are taken),
reads its "ready" time, then `revo down`. The baseline, in the same run: a fresh Python
process that only loads the same model into vLLM's AsyncLLM. Target: <= 60 s to ready.

    python bench/startup.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_ENGINE = """
import os, time
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
from revo_inference.app import resolve_model_path
from revo_inference.config import DEFAULT_MODELS_FILE, load_models_config
from revo_inference.engine import LocalChatEngine
if __name__ == "__main__":
    spec = next(m for m in load_models_config(DEFAULT_MODELS_FILE).models if m.kind == "chat")
    engine = LocalChatEngine.load(spec, resolve_model_path(spec))
    print("loaded", flush=True)
    engine.shutdown()
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def time_to_loaded(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from starting the bare-engine process to its "loaded" line."""
    started = time.monotonic()
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.strip() == "loaded":
            elapsed = time.monotonic() - started
            process.wait(120)
            return elapsed
    sys.exit(f"the bare engine exited ({process.wait()}) without loading")


def main() -> None:
    revo = str(Path(sys.executable).with_name("revo"))
    state = tempfile.mkdtemp(prefix="revo-startup-")
    os.chmod(state, 0o755)
    env = {**os.environ, "REVO_STATE_DIR": state}
    script = Path(state) / "bare_engine.py"
    script.write_text(BARE_ENGINE)

    bare = time_to_loaded([sys.executable, str(script)], env)
    up, output = timed([revo, "up"], env)
    try:
        reported = next(line for line in output.splitlines() if "revo is up in" in line)
    finally:
        timed([revo, "down"], env)
    print(f"bare AsyncLLM load (process start to engine loaded):    {bare:6.1f} s")
    print(f"revo up -> ready (NATS + Postgres + inference ready):    {up:6.1f} s")
    print(f"  revo up said: {reported.strip()}")
    print(f"ratio revo up / bare engine: {up / bare:.2f}   (target: revo up <= 60 s)")


if __name__ == "__main__":
    main()
