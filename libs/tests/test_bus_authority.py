"""The NATS authority on disk: credentials reused while current, issued anew when revo's
permissions for the identity changed (an upgrade), and shared safely between processes."""

from __future__ import annotations

import shutil

from revo_contracts.bus_identities import permissions_of
from revo_core import nats_jwt
from revo_core.bus_authority import BusAuthority


def claims(path) -> dict:
    return nats_jwt.creds_claims(path.read_text())


def account_claims(authority: BusAuthority) -> dict:
    """The account JWT nats-server is given, decoded."""
    for line in authority.server_config().splitlines():
        if line.strip().startswith(authority.account_public_key):
            return nats_jwt.claims_of(line.split('"')[1])
    raise AssertionError("the account is not in the server's config")


def test_a_services_credentials_are_reused_while_they_carry_its_permissions(tmp_path):
    authority = BusAuthority.load_or_create(tmp_path / "auth")
    first = authority.creds_file("memory").read_text()
    assert authority.creds_file("memory").read_text() == first
    assert claims(authority.creds_file("memory"))["nats"]["pub"]["allow"] == list(
        permissions_of("memory").publish
    )


def test_credentials_with_other_permissions_are_issued_anew(tmp_path):
    authority = BusAuthority.load_or_create(tmp_path / "auth")
    # As after an upgrade that changed inference's subjects: the file holds other lists.
    stale = authority.creds_file("inference")
    shutil.copy(authority.creds_file("memory"), stale)
    renewed = authority.creds_file("inference")
    assert claims(renewed)["nats"]["sub"]["allow"] == list(permissions_of("inference").subscribe)
    assert claims(renewed)["name"] == "inference"


def test_credentials_signed_by_another_authority_are_replaced(tmp_path):
    ours = BusAuthority.load_or_create(tmp_path / "ours")
    theirs = BusAuthority.load_or_create(tmp_path / "theirs")
    path = ours.creds_file("memory")
    shutil.copy(theirs.creds_file("memory"), path)
    assert claims(ours.creds_file("memory"))["iss"] == ours.account_public_key


def test_what_one_process_issues_and_revokes_another_sees(tmp_path):
    cli = BusAuthority.load_or_create(tmp_path / "auth")
    server_side = BusAuthority.load_or_create(tmp_path / "auth")
    text = cli.issue("ci-acme")
    public_key = nats_jwt.creds_claims(text)["sub"]
    server_side.creds_file("operator")  # a write of its own meanwhile loses nothing
    cli.revoke(public_key)
    assert server_side.is_revoked(public_key)
    assert public_key in account_claims(server_side)["nats"]["revocations"]
    assert {c.identity for c in server_side.issued()} == {"ci-acme", "operator"}
