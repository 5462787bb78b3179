"""Tenants' integrations in Postgres: secret fields sealed (SecretBox), the rest in jsonb."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from revo_contracts.integrations import (
    MASK,
    SECRET_FIELDS,
    Integration,
    IntegrationInfo,
)
from revo_integrations.secret_box import SecretBox

_integration = msgspec.json.Decoder(Integration)


class ConfigStore:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self.pool = pool
        self.box = box

    async def put(self, tenant: str, integration: Integration) -> None:
        kind, settings, secrets = _split(integration)
        await self.pool.execute(
            """INSERT INTO integrations.configs (tenant, kind, settings, secrets)
               VALUES ($1, $2, $3::jsonb, $4)
               ON CONFLICT (tenant, kind) DO UPDATE
               SET settings = EXCLUDED.settings, secrets = EXCLUDED.secrets, updated_at = now()""",
            tenant,
            kind,
            msgspec.json.encode(settings).decode(),
            self.box.seal(msgspec.json.encode(secrets)),
        )

    async def get(self, tenant: str, kind: str) -> Integration | None:
        """The tenant's integration of this kind, secrets decrypted; None when there is none."""
        row = await self.pool.fetchrow(
            "SELECT settings, secrets FROM integrations.configs WHERE tenant = $1 AND kind = $2",
            tenant,
            kind,
        )
        if row is None:
            return None
        secrets = msgspec.json.decode(self.box.open(row["secrets"]))
        return _join(kind, msgspec.json.decode(row["settings"]), secrets)

    async def remove(self, tenant: str, kind: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM integrations.configs WHERE tenant = $1 AND kind = $2", tenant, kind
        )
        return status.endswith(" 1")

    async def list(self, tenant: str | None = None) -> list[IntegrationInfo]:
        """Every integration (of one tenant), secrets masked: they never leave the service."""
        rows = await self.pool.fetch(
            """SELECT tenant, kind, settings, secrets, updated_at FROM integrations.configs
               WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, kind""",
            tenant,
        )
        return [self._masked(row) for row in rows]

    def _masked(self, row: asyncpg.Record) -> IntegrationInfo:
        kind = row["kind"]
        settings = msgspec.json.decode(row["settings"])
        secrets = msgspec.json.decode(self.box.open(row["secrets"]))
        masks = {name: MASK for name, value in secrets.items() if value}
        updated: datetime = row["updated_at"]
        return IntegrationInfo(
            tenant=row["tenant"],
            kind=kind,
            integration=_join(kind, settings, masks),
            updated_at=updated.timestamp(),
        )

    async def rotate(self) -> int:
        """Re-encrypt every row under the first key; returns how many rows."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT tenant, kind, secrets FROM integrations.configs FOR UPDATE"
            )
            for row in rows:
                await conn.execute(
                    "UPDATE integrations.configs SET secrets = $3 WHERE tenant = $1 AND kind = $2",
                    row["tenant"],
                    row["kind"],
                    self.box.rotate(row["secrets"]),
                )
        return len(rows)


def _split(integration: Integration) -> tuple[str, dict, dict]:
    kind = type(integration).__struct_config__.tag
    fields = msgspec.to_builtins(integration)
    fields.pop("type", None)
    secret_names = SECRET_FIELDS[kind]
    secrets = {name: fields.pop(name) for name in secret_names if name in fields}
    return kind, fields, secrets


def _join(kind: str, settings: dict, secrets: dict) -> Integration:
    return _integration.decode(msgspec.json.encode({"type": kind, **settings, **secrets}))
