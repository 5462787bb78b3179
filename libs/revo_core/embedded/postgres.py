"""A real PostgreSQL 16 with pgvector, from the binaries the `pgserver` package ships.

We drive initdb/pg_ctl ourselves rather than pgserver's helper so the server listens on
a chosen loopback TCP port (services in other processes connect by DSN) and outlives the
process that started it when `revo up` asks for that. Postgres refuses to run as root,
so as root the cluster belongs to a `pgserver` system user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

from revo_core.embedded.nats_server import EmbeddedProcessError

DATABASE = "revo"
_PG_USER = "postgres"
# Server settings beyond initdb's defaults. The memory service's HNSW index has to stay in
# shared_buffers: at 100,000 memories (index 172 MB, table 205 MB) initdb's 128 MB made
# every insert and search read pages back from the OS cache; with 1 GB a store took 25% less
# Postgres CPU and its nearest-memory search a third less time. Shared buffers are memory only
# once pages are read into them. Fewer checkpoints mean fewer full-page images in the WAL
# (an HNSW insert rewrites dozens of index pages).
SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "2GB", "checkpoint_timeout": "15min"}


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # pgserver's import asks platformdirs for a runtime dir we never use.
        warnings.simplefilter("ignore")
        import pgserver._commands
        import pgserver.utils

    return pgserver


def _bin(name: str) -> str:
    return str(Path(_pgserver()._commands.POSTGRES_BIN_PATH) / name)


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    _pgserver().utils.ensure_user_exists("pgserver")
    return "pgserver"


class Postgres:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._user = _system_user()

    @property
    def dsn(self) -> str:
        return f"postgresql://{_PG_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        result = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, user=self._user
        )
        if result.returncode != 0:
            raise EmbeddedProcessError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}"
            )
        return result.stdout

    def start(self) -> Postgres:
        self._init_cluster()
        self._run(
            _bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-o", f"-p {self.port} -h 127.0.0.1 -k {self.data_dir} {_options(SETTINGS)}",
            "start",
        )  # fmt: skip
        self._ensure_database()
        return self

    def _init_cluster(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user:
            shutil.chown(self.data_dir, self._user)
            self.log_file.touch()
            shutil.chown(self.log_file, self._user)
        self._run(
            _bin("initdb"), "-D", str(self.data_dir), "-U", _PG_USER,
            "--auth=trust", "--encoding=utf8",
        )  # fmt: skip

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return self._run(
            _bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", _PG_USER,
            "-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql,
        )  # fmt: skip

    def _ensure_database(self) -> None:
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", "postgres")
        if not exists.strip():
            self.psql(f"CREATE DATABASE {DATABASE}", "postgres")
        self.psql("CREATE EXTENSION IF NOT EXISTS vector")

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run(_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")


def _options(settings: dict[str, str]) -> str:
    return " ".join(f"-c {name}={value}" for name, value in settings.items())
