"""`revo creds`: NATS credentials issued by this platform's authority (DESIGN.md §2).

  revo creds create --role ci --tenant T [--expires 90d] [--out FILE]
  revo creds create --role operator [--out FILE]
  revo creds list
  revo creds revoke PUBLIC_KEY
  revo creds k8s-secret [--namespace NS] [--name revo-nats-auth] | kubectl apply -f -

The authority (the account key that signs every credential) lives where `revo up` made it,
`.revo/nats-auth/`, or in `--authority DIR` / REVO_NATS_AUTHORITY (the directory an
operator keeps for a cluster). Issuing needs no change to the server; revoking rewrites the
server's config and, for the platform `revo up` runs here, reloads it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import yaml

from revo_cli.platform import bus_authority, nats_server
from revo_cli.service_call import EXIT_OK, EXIT_USAGE, fail
from revo_cli.state import connect_cli, load_state, nats_url, pid_alive, state_dir
from revo_contracts.audit import PLATFORM_TENANT, AuditAction
from revo_contracts.bus_identities import OPERATOR, SERVICES, ci_identity, ci_tenant
from revo_contracts.subjects import InvalidSubjectToken
from revo_core import nats_jwt
from revo_core.audit import audit_event, record_audit
from revo_core.bus_authority import BusAuthority, write_private
from revo_core.errors import BusUnavailable
from revo_core.when import duration_s


def add_creds_parser(commands: argparse._SubParsersAction) -> None:
    creds = commands.add_parser("creds", help="NATS credentials: CI publishers, operators")
    creds.add_argument("--authority", help="the authority's directory (default: revo up's)")
    actions = creds.add_subparsers(dest="creds_command", required=True)
    create = actions.add_parser("create", help="issue a .creds file; printed once")
    create.add_argument("--role", choices=("ci", "operator"), required=True)
    create.add_argument("--tenant", help="the tenant a ci credential publishes for")
    create.add_argument("--expires", help="valid for this long: 90d, 12h (default: no expiry)")
    create.add_argument("--out", help="write it to this file (mode 0600) instead of stdout")
    actions.add_parser("list", help="credentials issued, with their public keys")
    secret = actions.add_parser(
        "k8s-secret", help="a Secret with the server's trust and each service's credentials"
    )
    secret.add_argument("--namespace", default="default")
    secret.add_argument("--name", default="revo-nats-auth", help="the chart's nats.auth.secretName")
    revoke = actions.add_parser("revoke", help="refuse a credential from now on")
    revoke.add_argument("public_key")


def creds_command(args: argparse.Namespace) -> int:
    authority = BusAuthority.load_or_create(authority_dir(args.authority))
    if args.creds_command == "create":
        return _create(authority, args)
    if args.creds_command == "list":
        return _list(authority)
    if args.creds_command == "k8s-secret":
        print(k8s_secret(authority, args.name, args.namespace), end="")
        return EXIT_OK
    return _revoke(authority, args.public_key, args.nats_url)


def authority_dir(explicit: str | None) -> Path:
    chosen = explicit or os.environ.get("REVO_NATS_AUTHORITY")
    return Path(chosen) if chosen else state_dir() / "nats-auth"


def _create(authority: BusAuthority, args: argparse.Namespace) -> int:
    try:
        identity = _identity(args)
        expires_at = _expiry(args.expires)
    except (ValueError, InvalidSubjectToken) as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    text = authority.issue(identity, expires_at)
    public_key = nats_jwt.creds_claims(text)["sub"]
    if args.out:
        write_private(Path(args.out), text.encode())
    else:
        print(text, end="")
    until = f", expires {_date(expires_at)}" if expires_at else ""
    print(f"credential {public_key} for {identity}{until}.", file=sys.stderr)
    _audit("credentials.issued", identity, public_key, args.nats_url)
    return EXIT_OK


def _identity(args: argparse.Namespace) -> str:
    if args.role == "operator":
        return OPERATOR
    if not args.tenant:
        raise ValueError("a ci credential needs --tenant")
    return ci_identity(args.tenant)


def _expiry(text: str | None) -> float | None:
    if text is None:
        return None
    seconds = duration_s(text)
    # Days or hours: a CI credential lives as long as a pipeline's secrets, not minutes.
    if seconds is None or text.strip().endswith("m"):
        raise ValueError(f"cannot read --expires {text!r}: use 90d or 12h")
    return time.time() + seconds


def _list(authority: BusAuthority) -> int:
    print(f"{'identity':<24} {'public key':<57} {'issued':<17} {'expires':<17} state")
    for issued in authority.issued():
        state = "revoked" if authority.is_revoked(issued.public_key) else _validity(issued)
        expires = _date(issued.expires_at) if issued.expires_at else "never"
        print(
            f"{issued.identity:<24} {issued.public_key:<57} "
            f"{_date(issued.issued_at):<17} {expires:<17} {state}"
        )
    return EXIT_OK


def _validity(issued) -> str:
    return "expired" if issued.expires_at and issued.expires_at < time.time() else "valid"


def _revoke(authority: BusAuthority, public_key: str, nats_url_arg: str | None) -> int:
    try:
        revoked = authority.revoke(public_key)
    except KeyError as exc:
        return fail(f"error: {exc.args[0]}", EXIT_USAGE)
    print(f"revoked {public_key} ({revoked.identity}).")
    _audit("credentials.revoked", revoked.identity, public_key, nats_url_arg)
    if _reload_local_server(authority):
        print("the nats-server `revo up` runs here reloaded: it refuses the credential now.")
    else:
        print(
            "no nats-server of `revo up` runs here: give your servers the new config "
            f"({authority.write_server_config()}) and reload them (SIGHUP)."
        )
    return EXIT_OK


def _audit(action: AuditAction, identity: str, public_key: str, url: str | None) -> None:
    """Into the audit log, when the platform is reachable (its public key, never the seed)."""
    tenant = ci_tenant(identity) or PLATFORM_TENANT
    event = audit_event(
        tenant, OPERATOR, action, target=public_key, service="cli", identity=identity
    )

    async def publish() -> bool:
        try:
            bus = await connect_cli(nats_url(url))
        except BusUnavailable:
            return False
        try:
            return await record_audit(bus, event)
        finally:
            await bus.close()

    if not asyncio.run(publish()):
        print(f"note: not in the audit log (no revo platform at {nats_url(url)})", file=sys.stderr)


def _reload_local_server(authority: BusAuthority) -> bool:
    """Have the nats-server `revo up` runs from this authority reload its config."""
    state = load_state()
    if state is None or not pid_alive(state.nats.pid):
        return False
    if authority.directory.resolve() != bus_authority(state_dir()).directory.resolve():
        return False
    nats_server(state, state_dir()).reload(pid=state.nats.pid)
    return True


def k8s_secret(authority: BusAuthority, name: str, namespace: str) -> str:
    """The Secret the Helm chart mounts: `auth.conf` into nats-server, `<service>.creds`
    into each service (only its own). The operator's credentials stay on this machine."""
    data = {"auth.conf": authority.server_config()}
    data |= {f"{service}.creds": authority.creds_file(service).read_text() for service in SERVICES}
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }
    return yaml.safe_dump(document, sort_keys=False, width=1_000_000)


def _date(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(when or 0))
