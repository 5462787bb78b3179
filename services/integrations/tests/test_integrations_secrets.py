"""Tenants' secrets are sealed at rest, readable with any configured key, and rotated."""

from __future__ import annotations

import pytest

from revo_contracts.integrations import MASK, GithubIntegration, SlackIntegration
from revo_core.testing.fixtures import INTEGRATIONS_SECRET_KEY
from revo_integrations.config_store import ConfigStore
from revo_integrations.secret_box import SecretBox, SecretKeyMissing, SecretUnreadable, new_key

WEBHOOK_SECRET = "s3cret-of-the-webhook"
TOKEN = "ghp_tokenthatmustneverbeseen"


async def test_a_stored_integration_keeps_its_secrets_encrypted_and_reads_back_whole(
    integrations, pg
):
    store = ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY))
    github = GithubIntegration(webhook_secret=WEBHOOK_SECRET, token=TOKEN, check_runs=False)
    await store.put("secrets-acme", github)

    raw = await pg.fetchrow(
        "SELECT settings::text AS settings, secrets FROM integrations.configs "
        "WHERE tenant = 'secrets-acme' AND kind = 'github'"
    )
    assert WEBHOOK_SECRET not in raw["settings"] and TOKEN not in raw["settings"]
    assert WEBHOOK_SECRET.encode() not in raw["secrets"] and TOKEN.encode() not in raw["secrets"]
    assert await store.get("secrets-acme", "github") == github
    assert await store.get("secrets-acme", "slack") is None


async def test_a_listed_integration_shows_only_masks_for_the_secrets_it_has(integrations, pg):
    store = ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY))
    await store.put("secrets-list", SlackIntegration(token="xoxb-1", channel="#ci"))
    [info] = await store.list("secrets-list")
    assert info.kind == "slack"
    assert info.integration == SlackIntegration(token=MASK, channel="#ci")


async def test_rotation_re_encrypts_under_the_new_key_so_the_old_one_can_go(integrations, pg):
    old = SecretBox(INTEGRATIONS_SECRET_KEY)
    await ConfigStore(pg, old).put("secrets-rotate", GithubIntegration(token=TOKEN))
    fresh = new_key()
    rotated = ConfigStore(pg, SecretBox(f"{fresh},{INTEGRATIONS_SECRET_KEY}"))
    try:
        assert await rotated.rotate() >= 1
        only_new = ConfigStore(pg, SecretBox(fresh))
        assert (await only_new.get("secrets-rotate", "github")).token == TOKEN
        with pytest.raises(SecretUnreadable):
            await ConfigStore(pg, old).get("secrets-rotate", "github")
    finally:  # every row back under the key the shared service has
        await ConfigStore(pg, SecretBox(f"{INTEGRATIONS_SECRET_KEY},{fresh}")).rotate()


def test_the_service_needs_a_key_and_says_how_to_make_one():
    with pytest.raises(SecretKeyMissing, match=r"Fernet\.generate_key"):
        SecretBox(" , ")


async def test_a_service_started_with_a_new_key_first_re_encrypts_every_row_under_it(
    integrations, integrations_nats, integrations_factory, pg
):
    await ConfigStore(pg, SecretBox(INTEGRATIONS_SECRET_KEY)).put(
        "secrets-start", GithubIntegration(webhook_secret=WEBHOOK_SECRET)
    )
    fresh = new_key()
    rotating = integrations_factory.start(
        integrations_nats.url,
        "integrations-rotating",
        REVO_INTEGRATIONS_SECRET_KEYS=f"{fresh},{INTEGRATIONS_SECRET_KEY}",
    )
    try:
        only_new = ConfigStore(pg, SecretBox(fresh))
        assert (await only_new.get("secrets-start", "github")).webhook_secret == WEBHOOK_SECRET
    finally:
        rotating.stop()
        await ConfigStore(pg, SecretBox(f"{INTEGRATIONS_SECRET_KEY},{fresh}")).rotate()
