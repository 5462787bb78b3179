"""Who is calling: `Authorization: Bearer <API key or JWT>` on every /v1 request.

The middleware binds the request to the caller's tenant (`request["principal"]`), applies
the per-caller rate limit, checks the caller's role against the route's rule
(permissions.py), and turns every error into an OpenAI-shaped JSON body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from revo_chat_gateway import permissions
from revo_chat_gateway.http_errors import HttpError, from_service_error, json_error
from revo_chat_gateway.keys import KeyRefused, KeyStore, Principal, looks_like_key
from revo_chat_gateway.limits import RateLimiter
from revo_chat_gateway.tokens import InvalidToken, TokenVerifier
from revo_core.errors import BusUnavailable, ServiceError
from revo_core.logging import get_logger

PRINCIPAL = "principal"
log = get_logger("revo.chat_gateway.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator:
    def __init__(self, keys: KeyStore, tokens: TokenVerifier) -> None:
        self.keys = keys
        self.tokens = tokens

    async def authenticate(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip() if scheme.lower() == "bearer" else ""
        if not credential and request.path == "/v1/ws":
            # A browser cannot set headers on a WebSocket: it sends `?token=` instead.
            credential = request.query.get("token", "").strip()
        if not credential:
            raise HttpError(
                401, "missing credentials: send Authorization: Bearer <API key>", "unauthorized"
            )
        if looks_like_key(credential):
            try:
                return await self.keys.verify(credential)
            except KeyRefused as exc:
                raise HttpError(401, str(exc), "unauthorized") from None
        try:
            return self.tokens.verify(credential)
        except InvalidToken as exc:
            raise HttpError(401, str(exc), "unauthorized") from None


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter", RateLimiter)


def limit_key(principal: Principal) -> str:
    return f"{principal.via}:{principal.subject}"


def auth_middleware() -> Callable:
    """Authenticates /v1 requests with the app's AUTHENTICATOR (set at start-up)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            rule = permissions.route_rule(request)
            # An unknown /v1 path needs credentials too: no probing for routes anonymously.
            if rule != permissions.PUBLIC and (rule is not None or request.path.startswith("/v1/")):
                principal = await request.app[AUTHENTICATOR].authenticate(request)
                request.app[LIMITER].check_request(limit_key(principal))
                request[PRINCIPAL] = principal
                if rule is not None:
                    permissions.require_route(rule, principal, request)
            return await handler(request)
        except HttpError as error:
            return error.response()
        except ServiceError as error:
            return from_service_error(error)
        except BusUnavailable as error:
            return json_error(503, str(error), "overloaded")

    return middleware
