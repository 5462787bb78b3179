"""JWT bearer tokens: HS256 with a shared secret or RS256 with a public key.

The accepted algorithms are fixed by what is configured, never taken from the token, so
`alg: none` and algorithm confusion (an HS256 token signed with the RSA public key) fail.
Expiry and audience are required and checked. Claims: `tenant`, `sub`, optional `role`.
"""

from __future__ import annotations

import jwt

from revo_chat_gateway.keys import Principal
from revo_contracts.subjects import InvalidSubjectToken, token

MAX_SUBJECT_CHARS = 256


class InvalidToken(Exception):
    """The token is not accepted; the message says why (for the 401 body)."""


class TokenVerifier:
    def __init__(self, secret: str | None, public_key: str | None, audience: str) -> None:
        self._keys: list[tuple[str, str]] = []
        if secret:
            self._keys.append(("HS256", secret))
        if public_key:
            self._keys.append(("RS256", public_key))
        self.audience = audience

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def verify(self, raw: str) -> Principal:
        if not self._keys:
            raise InvalidToken("bearer tokens are not enabled on this gateway; use an API key")
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        key = dict(self._keys).get(header.get("alg", ""))
        if key is None:
            allowed = ", ".join(alg for alg, _ in self._keys)
            raise InvalidToken(f"token algorithm {header.get('alg')!r} is not accepted ({allowed})")
        try:
            claims = jwt.decode(
                raw,
                key,
                algorithms=[header["alg"]],
                audience=self.audience,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token rejected: {exc}") from None
        return _principal(claims)


def _principal(claims: dict) -> Principal:
    tenant = claims.get("tenant")
    try:
        token(str(tenant), "tenant")
    except InvalidSubjectToken:
        raise InvalidToken("token has no valid `tenant` claim") from None
    role = claims.get("role", "member")
    if role not in ("admin", "member"):
        raise InvalidToken(f"token role {role!r} is not admin or member")
    subject = str(claims["sub"])
    # The subject is the user its runs work for (RunSubmit.user): within the same bounds.
    if not 1 <= len(subject) <= MAX_SUBJECT_CHARS:
        raise InvalidToken(f"token `sub` must be 1 to {MAX_SUBJECT_CHARS} characters")
    return Principal(tenant=str(tenant), subject=subject, role=role, via="jwt")
