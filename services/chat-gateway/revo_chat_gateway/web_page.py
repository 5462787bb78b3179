"""The web chat at `/`: static files from `web/`, served as they are (no build step).

The page holds no data, so it needs no credentials (auth guards /v1 only): the user types
an API key, which the page keeps in the browser and sends to the API like any client.
Assets are addressed by their content hash (`/static/app.js?v=<hash>`, written into
index.html at start-up), so browsers keep them for a year and a new release is fetched at
once; the page itself is revalidated on every load. The Markdown renderer and sanitiser
(markdown-it, DOMPurify) are vendored from npm under `web/vendor/`, with their licences:
see `web/vendor/README.md`.

What the page offers depends on the caller's role (`GET /v1/whoami`): the roles that may
chat and those that may only read are written into index.html from permissions.py, so the
page never keeps a copy of that table that could drift from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from revo_chat_gateway import permissions

WEB_DIR = Path(__file__).with_name("web")
ASSETS = {
    "app.js": "text/javascript",
    "markdown.js": "text/javascript",
    "style.css": "text/css",
    "vendor/markdown-it.umd.min.js": "text/javascript",
    "vendor/purify.min.js": "text/javascript",
    "vendor/markdown-it.LICENSE.txt": "text/plain",
    "vendor/dompurify.LICENSE.txt": "text/plain",
}
LONG_CACHE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Scripts, styles and connections only to this origin: model output rendered on the page
# cannot pull anything in, nor can the page be framed. Trusted Types: HTML reaches the DOM
# only through DOMPurify's policy (markdown.js), never as a plain string.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {ws}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types dompurify"
)


def _allowed(*rules: permissions.Rule) -> list[str]:
    """The roles every one of the rules allows, in permissions.ROLES's order."""
    return [
        role
        for role in permissions.ROLES
        if all(rule == permissions.PUBLIC or role in rule for rule in rules)
    ]


def chat_roles() -> list[str]:
    """Who may start a chat and write in it: the page shows them the composer."""
    actions = permissions.WS_ACTIONS
    return _allowed(actions["hello_new"], actions["message"], actions["cancel"])


def read_roles() -> list[str]:
    """Who may list their chats and open one on the socket: the others (a CI key) are
    told at sign-in that the page is not for them."""
    rules = permissions.ROUTES
    return _allowed(
        rules[("GET", "/v1/sessions")], rules[("GET", "/v1/ws")], permissions.WS_ACTIONS["hello"]
    )


def _fill_attribute(html: str, name: str, value: str) -> str:
    empty = f'{name}=""'
    if html.count(empty) != 1:
        raise RuntimeError(f"index.html should have one empty {empty}")
    return html.replace(empty, f'{name}="{value}"')


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _load(name: str, content_type: str, body: bytes | None = None) -> StaticFile:
    body = (WEB_DIR / name).read_bytes() if body is None else body
    return StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:16]}"')


class WebPage:
    """The files, read once: the page and its assets."""

    def __init__(self) -> None:
        self.assets = {name: _load(name, kind) for name, kind in ASSETS.items()}
        html = (WEB_DIR / "index.html").read_text()
        for name in self.assets:
            html = html.replace(f'"/static/{name}"', f'"/static/{name}?v={self.version(name)}"')
        html = _fill_attribute(html, "data-chat-roles", " ".join(chat_roles()))
        html = _fill_attribute(html, "data-read-roles", " ".join(read_roles()))
        self.index = _load("index.html", "text/html", html.encode())

    def version(self, name: str) -> str:
        return self.assets[name].etag.strip('"')

    async def page(self, request: web.Request) -> web.StreamResponse:
        response = _respond(request, self.index, REVALIDATE)
        # The socket is same-origin; `ws:`/`wss:` are spelled out for browsers whose
        # 'self' does not cover them.
        host = request.host
        response.headers["Content-Security-Policy"] = CSP.format(ws=f"ws://{host} wss://{host}")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asset = self.assets.get(name)
        if asset is None:
            raise web.HTTPNotFound(text=f"no asset {name!r}")
        versioned = request.query.get("v") == self.version(name)
        return _respond(request, asset, LONG_CACHE if versioned else REVALIDATE)


def _respond(request: web.Request, file: StaticFile, cache: str) -> web.StreamResponse:
    headers = {
        "Cache-Control": cache,
        "ETag": file.etag,
        "X-Content-Type-Options": "nosniff",
    }
    if file.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=file.body, content_type=file.content_type, charset="utf-8", headers=headers
    )


def add_routes(app: web.Application) -> None:
    page = WebPage()
    app.router.add_get("/", page.page)
    # `{name}` may hold a slash (vendor/…): it is only ever a key of ASSETS, never a path.
    app.router.add_get("/static/{name:.+}", page.asset)
