"""Fixtures of the chat-gateway tests beyond the shared ones (revo_core.testing.fixtures)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def scripted_ledger(scripted_nats, ledger_factory):
    """A cost ledger beside the scripted gateway (its shipped price table): `/v1/costs`."""
    return ledger_factory.start(scripted_nats.url, "gateway-ledger")
