"""Tenants' secrets encrypted at rest with `cryptography`'s Fernet (AES-128-CBC + HMAC).

MultiFernet takes several keys: the first encrypts, all decrypt, and `rotate` re-encrypts a
token under the first; so a key is rotated without a moment where old rows are unreadable.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretKeyMissing(RuntimeError):
    """The service has no key to encrypt secrets with (REVO_INTEGRATIONS_SECRET_KEYS)."""


class SecretUnreadable(RuntimeError):
    """A stored secret no configured key decrypts (a key was dropped before rotation)."""


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [key.strip() for key in keys.split(",") if key.strip()]
        if not parts:
            raise SecretKeyMissing(
                "REVO_INTEGRATIONS_SECRET_KEYS is empty: set it to a Fernet key "
                "(python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        self._fernet = MultiFernet([Fernet(key) for key in parts])
        self.key_count = len(parts)

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise SecretUnreadable("no configured key decrypts this secret") from exc

    def rotate(self, token: bytes) -> bytes:
        """The same secret, encrypted under the first key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise SecretUnreadable("no configured key decrypts this secret") from exc


def new_key() -> str:
    return Fernet.generate_key().decode()
