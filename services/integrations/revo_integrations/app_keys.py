"""The resources the service's parts share through its aiohttp app, each set by app.py's
cleanup contexts: kept apart from app.py so a part can import them without importing the
wiring that imports it."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from revo_integrations.config_store import ConfigStore
from revo_integrations.outcomes import OutcomeAnnouncer

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
CONFIGS: web.AppKey[ConfigStore] = web.AppKey("configs", ConfigStore)
ANNOUNCER: web.AppKey[OutcomeAnnouncer] = web.AppKey("announcer", OutcomeAnnouncer)
