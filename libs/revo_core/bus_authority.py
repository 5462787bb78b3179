"""revo's NATS authority: the operator, account and user keys, the credentials it issues, and
the auth part of nats-server's config (decentralised JWT auth, DESIGN.md §2).

One directory holds it (`.revo/nats-auth/` under `revo up`, mode 0700, files 0600):
- `authority.json`: the operator, system-account and revo-account seeds, every credential
  issued (identity, public key, when, expiry; never its seed) and the revoked keys;
- `server-auth.conf`: what nats-server includes to trust the operator (the account JWTs
  preloaded, so no resolver service is needed);
- `creds/<identity>.creds`: a service's or the operator's credentials (user JWT + seed).

Users are signed by the account key: issuing a credential (`revo creds create`) needs no
change to the server. Revoking one adds its key to the account JWT's revocations: the
server config is written again and the server reloads it (SIGHUP).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nkeys

from revo_contracts.bus_identities import (
    RESPONSES_MAX,
    RESPONSES_TTL_S,
    BusPermissions,
    permissions_of,
)
from revo_core import nats_jwt

ACCOUNT_NAME = "REVO"
_UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
              "wildcards": True, "conn": -1, "leaf": -1}  # fmt: skip
_JETSTREAM_UNLIMITED = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


# Bytes of a client's CONNECT line (its JWT inside) the server accepts.
MAX_CONTROL_LINE = 32 * 1024


class IssuedCredential(msgspec.Struct, kw_only=True):
    identity: str
    public_key: str
    issued_at: float
    expires_at: float | None = None


class _Keys(msgspec.Struct, kw_only=True):
    operator_seed: str
    system_seed: str
    account_seed: str
    # Signed once, with the keys: nats-server cannot reload a config whose operator changed.
    operator_jwt: str
    system_jwt: str
    issued: list[IssuedCredential] = []
    # public key -> unix time: credentials of that key issued before it are refused.
    revoked: dict[str, int] = {}


class BusAuthority:
    def __init__(self, directory: Path, keys: _Keys) -> None:
        self.directory = Path(directory)
        self._keys = keys

    # -- keys on disk -------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, directory: Path) -> BusAuthority:
        """The authority kept in `directory`, created there (with new keys) the first time."""
        path = Path(directory) / "authority.json"
        if path.exists():
            return cls(Path(directory), msgspec.json.decode(path.read_bytes(), type=_Keys))
        authority = cls(Path(directory), _new_keys())
        authority._save()
        return authority

    def _save(self) -> None:
        _private_dir(self.directory)
        write_private(self.directory / "authority.json", msgspec.json.encode(self._keys))

    def _read(self) -> _Keys:
        """The keys as on disk now: `revo creds` in another process may have issued or
        revoked since this object was loaded."""
        path = self.directory / "authority.json"
        if path.exists():
            self._keys = msgspec.json.decode(path.read_bytes(), type=_Keys)
        return self._keys

    @contextlib.contextmanager
    def _changing(self) -> Iterator[_Keys]:
        """Read, change and write the keys under a file lock (one writer at a time)."""
        _private_dir(self.directory)
        fd = os.open(self.directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keys = self._read()
            yield keys
            self._save()
        finally:
            os.close(fd)

    def _pair(self, seed: str) -> nkeys.KeyPair:
        return nkeys.from_seed(seed.encode())

    @property
    def account_public_key(self) -> str:
        return self._pair(self._keys.account_seed).public_key.decode()

    # -- the server's side ------------------------------------------------------------------------

    def server_config(self) -> str:
        """nats-server config lines that make it trust this authority (and only it)."""
        keys = self._read()  # revocations made since, by `revo creds` in another process
        operator = self._pair(keys.operator_seed)
        system_key = self._pair(keys.system_seed).public_key.decode()
        return (
            f'operator: "{keys.operator_jwt}"\n'
            f'system_account: "{system_key}"\n'
            # A client sends its user JWT, permission lists included, in its CONNECT line:
            # the integrations identity's is ~5 KB, past the server's 4 KiB default.
            f"max_control_line: {MAX_CONTROL_LINE}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {system_key}: "{keys.system_jwt}"\n'
            f'  {self.account_public_key}: "{self._account_jwt(operator)}"\n'
            "}\n"
        )

    def _account_jwt(self, operator: nkeys.KeyPair) -> str:
        claims: dict[str, Any] = {
            "type": "account",
            "limits": {**_UNLIMITED, **_JETSTREAM_UNLIMITED},
            "default_permissions": {"pub": {}, "sub": {}},
        }
        if self._keys.revoked:
            claims["revocations"] = dict(self._keys.revoked)
        return nats_jwt.encode(claims, self.account_public_key, ACCOUNT_NAME, operator)

    def write_server_config(self, path: Path | None = None) -> Path:
        path = path or self.directory / "server-auth.conf"
        _private_dir(path.parent)
        write_private(path, self.server_config().encode())
        return path

    # -- credentials ------------------------------------------------------------------------------

    def issue(self, identity: str, expires_at: float | None = None) -> str:
        """New `.creds` text for `identity` (a service, `operator` or `ci-<tenant>`), with the
        permissions bus_identities gives it. Its seed is not kept: print it or write it."""
        permissions = permissions_of(identity)
        user = nkeys.from_seed(_new_seed(nkeys.PREFIX_BYTE_USER))
        public_key = user.public_key.decode()
        jwt = nats_jwt.encode(
            _user_claims(permissions),
            public_key,
            identity,
            self._pair(self._keys.account_seed),
            expires_at,
        )
        with self._changing() as keys:
            keys.issued.append(
                IssuedCredential(
                    identity=identity,
                    public_key=public_key,
                    issued_at=time.time(),
                    expires_at=expires_at,
                )
            )
        return nats_jwt.creds_file(jwt, user.seed)

    def creds_file(self, identity: str) -> Path:
        """The credentials file of a service or the operator: reused while it carries the
        permissions this version of revo gives the identity, issued anew when they changed
        (an upgrade that added a subject must not leave a service without it)."""
        path = self.directory / "creds" / f"{identity}.creds"
        if not path.exists() or not self._current(path, identity):
            _private_dir(path.parent)
            write_private(path, self.issue(identity).encode())
        return path

    def _current(self, path: Path, identity: str) -> bool:
        try:
            claims = nats_jwt.creds_claims(path.read_text())
        except (ValueError, IndexError, KeyError):
            return False
        wanted = _user_claims(permissions_of(identity))
        issued = claims.get("nats", {})
        return claims.get("iss") == self.account_public_key and all(
            issued.get(field) == wanted.get(field) for field in ("pub", "sub", "resp")
        )

    def issued(self) -> list[IssuedCredential]:
        return list(self._read().issued)

    def revoke(self, public_key: str) -> IssuedCredential:
        """Refuse a credential from now on (the server must reload its config: `reload`)."""
        with self._changing() as keys:
            found = next((c for c in keys.issued if c.public_key == public_key), None)
            if found is None:
                raise KeyError(f"no credential with public key {public_key} was issued here")
            # Every JWT of that key issued up to now (keys are never reused: one per issue).
            keys.revoked[public_key] = int(time.time()) + 1
        return found

    def is_revoked(self, public_key: str) -> bool:
        return public_key in self._read().revoked


def _user_claims(permissions: BusPermissions) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "type": "user",
        "pub": {"allow": list(permissions.publish)},
        "sub": {"allow": list(permissions.subscribe)},
        "subs": -1,
        "data": -1,
        "payload": -1,
    }
    if permissions.responds:
        claims["resp"] = {"max": RESPONSES_MAX, "ttl": RESPONSES_TTL_S * 1_000_000_000}
    return claims


def _new_seed(prefix: int) -> bytes:
    return nkeys.encode_seed(os.urandom(32), prefix)


def _new_keys() -> _Keys:
    """New operator, system-account and account keys, and the operator's and system
    account's JWTs (they never change)."""
    operator = nkeys.from_seed(_new_seed(nkeys.PREFIX_BYTE_OPERATOR))
    system = nkeys.from_seed(_new_seed(nkeys.PREFIX_BYTE_ACCOUNT))
    system_key = system.public_key.decode()
    return _Keys(
        operator_seed=operator.seed.decode(),
        system_seed=system.seed.decode(),
        account_seed=_new_seed(nkeys.PREFIX_BYTE_ACCOUNT).decode(),
        operator_jwt=nats_jwt.encode(
            {"type": "operator", "system_account": system_key},
            operator.public_key.decode(),
            "revo",
            operator,
        ),
        system_jwt=nats_jwt.encode(
            {"type": "account", "limits": _UNLIMITED}, system_key, "SYS", operator
        ),
    )


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        path.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write with mode 0600 from the start (never readable by others, even for a moment)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(tmp, path)
