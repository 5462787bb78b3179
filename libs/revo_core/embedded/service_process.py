"""A revo service run as its own process (`python -m revo_<name>`), for `revo up` and tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from revo_core.embedded.nats_server import EmbeddedProcessError


class ServiceProcess:
    def __init__(self, module: str, http_port: int, env: dict[str, str], log_file: Path) -> None:
        self.module = module
        self.http_port = http_port
        self.env = env
        self.log_file = Path(log_file)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/readyz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    @property
    def stderr_file(self) -> Path:
        return self.log_file.with_suffix(".stderr.log")

    def start(self) -> ServiceProcess:
        """Start in its own process group, so vLLM's engine processes stop with it.

        stdout (our JSON log lines) and stderr (third-party noise, e.g. the vLLM engine
        process's plain prints) go to separate files."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log, self.stderr_file.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                return bool(json.loads(response.read()).get("ready"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /readyz said ready; raises with the log tail if it never did."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.is_ready():
                return time.monotonic() - started
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.25)
        raise EmbeddedProcessError(
            f"{self.module} did not become ready in {timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = 4000) -> str:
        tails = []
        for path in (self.log_file, self.stderr_file):
            if path.exists():
                tails.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the service drains), then SIGKILL after `timeout`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group: the service and the engine processes it spawned."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
