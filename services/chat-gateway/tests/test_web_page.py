"""The web chat at `/`, driven in Debian's headless Chromium (Selenium) over a real gateway,
agent-runner and scripted model.

Selenium blocks, and the scripted model answers on this test's event loop: every step that
waits on the page runs in a thread (`in_browser`), so the loop serves the model meanwhile."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import aiohttp
import pytest
from browser_testkit import WAIT_S, csp_violations, start_chromium
from gateway_testkit import base_url, hs256_token, scripted_default
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException as StaleElementReference
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from revo_core.testing.fixtures import create_api_key
from revo_core.testing.scripted_model import Reply, Script, call

WRONG_KEY = "revo_0123456789abcdef_wrong"
FIRST_MESSAGE = "Show me the fix"
# Several tokens, Markdown with a code block, and HTML that must stay text.
MARKDOWN_ANSWER = (
    "Here is **the fix**:\n\n```python\nprint('fixed')\n```\n\n"
    "No <img src=x onerror=window.pwned=1> in here."
)
TOOL_ANSWER = "Looked at the files: `README.md` is the one to read."
RESUMED_ANSWER = "Still here after the socket dropped."
in_browser = asyncio.to_thread


@pytest.fixture
async def key(scripted_gateway, scripted_bus) -> str:
    return await create_api_key(scripted_bus, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path)
    yield driver
    driver.quit()


class ChatPage:
    """The page as a person uses it, found by its `data-testid`s. Blocking: run in a thread."""

    def __init__(self, driver: webdriver.Chrome, url: str) -> None:
        self.driver = driver
        self.url = url

    def until(self, condition, what: str):
        # The page re-renders lists (the sidebar) as it learns: an element found a moment
        # ago may be gone; the condition is then simply tried again.
        return WebDriverWait(
            self.driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReference,)
        ).until(lambda _: condition(), message=f"waited {WAIT_S} s for {what}")

    def one(self, testid: str, within: WebElement | None = None) -> WebElement:
        return (within or self.driver).find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def open(self) -> None:
        self.driver.get(self.url)
        self.until(lambda: self.one("signin").is_displayed(), "the sign-in form")

    def sign_in(self, key: str) -> None:
        field = self.one("api-key-input")
        field.clear()
        field.send_keys(key)
        self.one("signin-button").click()

    def sign_in_error(self) -> str:
        self.until(lambda: self.one("signin-error").is_displayed(), "the sign-in error")
        return self.one("signin-error").text

    def wait_signed_in(self) -> None:
        self.until(lambda: self.one("app").is_displayed(), "the chat after signing in")
        self.until(lambda: self.connection() == "online", "the socket to connect")

    def connection(self) -> str:
        return self.one("connection").get_attribute("data-state")

    def send(self, message: str) -> None:
        self.until(lambda: self.one("send-button").is_enabled(), "a connected composer")
        self.one("message-input").send_keys(message, Keys.ENTER)

    def messages(self, kind: str) -> list[WebElement]:
        finished = ':not([data-streaming="true"])'
        return self.all(f'[data-testid="message"][data-kind="{kind}"]{finished}')

    def wait_answers(self, count: int) -> WebElement:
        self.until(lambda: len(self.messages("assistant")) >= count, f"answer {count}")
        return self.messages("assistant")[-1]

    def run_status(self) -> str:
        return self.one("run-status").get_attribute("data-status")

    def wait_run_status(self, status: str) -> None:
        self.until(lambda: self.run_status() == status, f"the run panel to say {status!r}")

    def stop_enabled(self) -> bool:
        return self.one("stop-button").is_enabled()

    def record_streamed_text(self) -> None:
        """Keep every text the streaming answer shows, as the DOM changes."""
        self.driver.execute_script(
            "window.streamed = [];"
            "new MutationObserver(() => {"
            "  const s = document.querySelector('[data-testid=\"streaming-text\"]');"
            "  if (s) window.streamed.push(s.textContent);"
            "}).observe(document.getElementById('messages'),"
            "  {subtree: true, childList: true, characterData: true});"
        )

    def streamed(self) -> list[str]:
        return self.driver.execute_script("return window.streamed")

    def session_items(self) -> list[WebElement]:
        return self.all('[data-testid="session-item"]')

    def listed_session(self, title: str) -> WebElement | None:
        return next((s for s in self.session_items() if s.text.startswith(title)), None)

    def wait_session_current(self, title: str) -> None:
        def current():
            session = self.listed_session(title)
            return session is not None and session.get_attribute("aria-current") == "true"

        self.until(current, f"the session {title!r}, current, in the sidebar")

    def open_session(self, title: str) -> None:
        def clicked():
            session = self.listed_session(title)
            if session is not None:
                session.click()
            return session is not None

        self.until(clicked, f"the session {title!r} to open")

    def tool_calls(self) -> list[WebElement]:
        return self.all('[data-testid="tool-call"]')

    def steps(self) -> list[str]:
        return [s.get_attribute("data-type") for s in self.all('[data-testid="run-step"]')]

    def drop_socket(self) -> None:
        self.driver.execute_script("window.revo.state.ws.close()")

    def reconnects(self) -> int:
        return self.driver.execute_script("return window.revo.state.reconnects")

    def scroll_to_top(self) -> None:
        self.driver.execute_script("document.getElementById('messages').scrollTop = 0")

    def record_sent_frames(self) -> None:
        """Keep every frame the page sends on its sockets from now on (again: from now)."""
        self.driver.execute_script(
            "if (!window.sentFrames) {"
            "  const send = WebSocket.prototype.send;"
            "  WebSocket.prototype.send = function (data) {"
            "    window.sentFrames.push(JSON.parse(data));"
            "    return send.call(this, data);"
            "  };"
            "}"
            "window.sentFrames = [];"
        )

    def sent_frames(self) -> list[dict]:
        return self.driver.execute_script("return window.sentFrames")

    def shown(self, testid: str) -> bool:
        return any(e.is_displayed() for e in self.all(f'[data-testid="{testid}"]'))

    def stored_keys(self) -> list[str]:
        return self.driver.execute_script(
            "return [localStorage, sessionStorage].map((s) => s.getItem('revo.apiKey'))"
            ".filter(Boolean)"
        )

    def sign_out(self) -> None:
        self.one("signout").click()
        self.until(lambda: self.one("signin").is_displayed(), "the sign-in form again")

    def screenshot(self, path: Path, dark: bool = False) -> None:
        scheme = [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": scheme})
        self.driver.save_screenshot(str(path))


async def test_a_person_signs_in_chats_with_streaming_tools_and_markdown_and_stops_a_run(
    scripted_gateway, scripted_model, key, browser, tmp_path
):
    page = ChatPage(browser, base_url(scripted_gateway) + "/")
    await in_browser(page.open)

    await in_browser(page.sign_in, WRONG_KEY)
    assert "not accepted" in await in_browser(page.sign_in_error)
    await in_browser(page.screenshot, tmp_path / "sign-in.png")
    await in_browser(page.sign_in, key)
    await in_browser(page.wait_signed_in)

    # A streamed answer: held at the model until the panel shows the run going.
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=MARKDOWN_ANSWER, gate=gate)])):
        await in_browser(page.record_streamed_text)
        await in_browser(page.send, FIRST_MESSAGE)
        await in_browser(page.wait_run_status, "running")
        assert await in_browser(page.stop_enabled)
        assert page.all('[data-testid="pending"]')  # "thinking…" until the first token
        await in_browser(page.screenshot, tmp_path / "running.png")
        gate.set()
        answer = await in_browser(page.wait_answers, 1)
        await in_browser(page.wait_run_status, "finished")

    partial = [t for t in await in_browser(page.streamed) if 0 < len(t) < len(MARKDOWN_ANSWER)]
    assert partial and all(MARKDOWN_ANSWER.startswith(t) for t in partial)
    assert answer.get_attribute("data-agent") == "assistant"
    assert page.one("message-agent", answer).text == "assistant"
    code = answer.find_element(By.CSS_SELECTOR, ".code-block pre code.language-python")
    assert code.text == "print('fixed')"
    assert answer.find_element(By.CSS_SELECTOR, ".code-lang").text == "python"
    assert answer.find_element(By.CSS_SELECTOR, "strong").text == "the fix"
    assert "<img src=x" in answer.text and not answer.find_elements(By.TAG_NAME, "img")
    assert browser.execute_script("return window.pwned") is None
    assert {"queued", "started", "model_call", "finished"} <= set(page.steps())
    assert not page.stop_enabled()
    await in_browser(page.wait_session_current, FIRST_MESSAGE)

    # An agent picked with @name, whose tool call shows in the run panel.
    script = Script([call("list_files", path="."), call("final_answer", answer=TOOL_ANSWER)])
    with scripted_default(scripted_model, script):
        await in_browser(page.send, "@scripted which files are there?")
        answer = await in_browser(page.wait_answers, 2)
        await in_browser(page.wait_run_status, "finished")

    assert answer.get_attribute("data-agent") == "scripted"
    assert answer.find_element(By.CSS_SELECTOR, "code").text == "README.md"
    user = page.messages("user")[-1]
    assert "which files are there?" in user.text and "@scripted" not in user.text
    (tool,) = page.tool_calls()
    assert tool.get_attribute("data-tool") == "list_files"
    assert tool.get_attribute("data-state") == "ok"
    assert '"path": "."' in page.one("tool-args", tool).text
    assert page.one("tool-result", tool).text  # the listing, whatever the runner's directory

    # A dropped socket: the page reconnects and resumes after the last item it had.
    gate = asyncio.Event()
    with scripted_default(scripted_model, Script([Reply(text=RESUMED_ANSWER, gate=gate)])):
        await in_browser(page.send, "Are you still there?")
        await in_browser(page.wait_run_status, "running")
        reconnects = await in_browser(page.reconnects)
        await in_browser(page.drop_socket)
        await in_browser(page.until, lambda: page.reconnects() > reconnects, "a reconnect")
        await in_browser(page.until, lambda: page.connection() == "online", "the socket back")
        gate.set()
        answer = await in_browser(page.wait_answers, 3)

    assert answer.text.endswith(RESUMED_ANSWER)
    assert len(page.messages("user")) == 3 and len(page.messages("assistant")) == 3

    # Stop: a run held at the model is cancelled from the page.
    gate = asyncio.Event()
    try:
        with scripted_default(scripted_model, Script([Reply(text="never said", gate=gate)])):
            await in_browser(page.send, "Take all the time you need")
            await in_browser(page.wait_run_status, "running")
            await in_browser(page.until, page.stop_enabled, "Stop to be enabled")
            await in_browser(page.one("stop-button").click)
            await in_browser(page.wait_run_status, "cancelled")
    finally:
        gate.set()
    assert page.all('[data-testid="notice"][data-type="cancelled"]')
    assert not page.stop_enabled()

    # A new chat is empty; the sidebar's session brings the whole conversation back.
    await in_browser(page.one("new-chat").click)
    await in_browser(page.until, lambda: not page.all('[data-testid="message"]'), "an empty chat")
    await in_browser(page.open_session, FIRST_MESSAGE)
    await in_browser(page.wait_answers, 3)
    await in_browser(page.wait_run_status, "cancelled")
    assert len(page.messages("user")) == 4
    assert page.all(".code-block code.language-python")

    await in_browser(page.one("run-details", page.messages("assistant")[1]).click)
    await in_browser(page.until, lambda: len(page.tool_calls()) == 1, "the tool run's details")
    await in_browser(page.scroll_to_top)
    shot = tmp_path / "chat.png"
    await in_browser(page.screenshot, shot)
    await in_browser(page.screenshot, tmp_path / "chat-dark.png", True)
    assert shot.exists() and shot.stat().st_size > 20_000
    # The whole chat ran within the page's CSP: Trusted Types and all.
    assert csp_violations(browser) == []


async def test_the_page_and_its_assets_need_no_credentials_and_are_cached_by_version(
    scripted_gateway,
):
    url = base_url(scripted_gateway)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/") as page:
            html = await page.text()
            assert page.status == 200 and page.content_type == "text/html"
            assert page.headers["Cache-Control"] == "no-cache"
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assets = re.findall(r'"(/static/[\w./-]+\?v=\w+)"', html)
        assert len(assets) == 5  # style.css, the two vendored libraries, markdown.js, app.js
        for asset in assets:
            async with http.get(f"{url}{asset}") as response:
                assert response.status == 200, asset
                assert response.content_type in ("text/javascript", "text/css")
                assert "immutable" in response.headers["Cache-Control"]
                etag = response.headers["ETag"]
            async with http.get(f"{url}{asset}", headers={"If-None-Match": etag}) as again:
                assert again.status == 304
        async with http.get(f"{url}/static/secrets.txt") as unknown:
            assert unknown.status == 404
        async with http.get(f"{url}/v1/whoami") as api:
            assert api.status == 401


def assert_read_only(page: ChatPage, role: str) -> None:
    """What a key that may only read sees: the notice, and nothing to chat with."""
    assert page.shown("read-only-notice")
    notice = page.one("read-only-notice").text
    assert f"read-only ({role})" in notice and "your own chats" in notice
    for control in ("new-chat", "composer", "message-input", "send-button", "stop-button"):
        assert not page.shown(control), f"a read-only page shows {control}"
    assert not page.shown("error-banner"), page.one("error-banner").text


async def test_a_viewer_key_reads_without_a_composer_and_a_ci_key_is_turned_away(
    scripted_gateway, scripted_bus, browser, tmp_path
):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    viewer = await create_api_key(scripted_bus, tenant, "viewer")
    ci = await create_api_key(scripted_bus, tenant, "ci")
    page = ChatPage(browser, base_url(scripted_gateway) + "/")
    await in_browser(page.open)
    await in_browser(page.record_sent_frames)

    # A CI key: told at the form that the page is not for it, and not remembered.
    await in_browser(page.sign_in, ci)
    error = await in_browser(page.sign_in_error)
    assert "not for CI keys" in error and "(role ci)" in error
    assert not page.shown("app")
    assert await in_browser(page.stored_keys) == []

    await in_browser(page.sign_in, viewer)
    await in_browser(page.wait_signed_in)
    await in_browser(page.until, lambda: page.shown("read-only-notice"), "the read-only notice")
    assert "viewer" in page.one("whoami").text
    await in_browser(assert_read_only, page, "viewer")
    # Even a submit forced on the hidden composer sends nothing the gateway would refuse.
    await in_browser(
        browser.execute_script,
        "document.getElementById('input').value = 'let me chat';"
        "document.getElementById('composer').requestSubmit();"
        "document.getElementById('new-chat').click();",
    )
    assert await in_browser(page.sent_frames) == []
    await in_browser(assert_read_only, page, "viewer")
    await in_browser(page.screenshot, tmp_path / "viewer.png")

    # Reloaded with the key remembered: still read-only.
    await in_browser(browser.refresh)
    await in_browser(page.wait_signed_in)
    await in_browser(page.until, lambda: page.shown("read-only-notice"), "the notice again")
    await in_browser(assert_read_only, page, "viewer")
    assert csp_violations(browser) == []


async def test_a_member_chats_and_a_viewer_of_the_same_user_reads_that_chat(
    scripted_gateway, scripted_model, browser, tmp_path
):
    # Tokens for one user: a session belongs to the user (`jwt:<sub>`), whatever the role.
    tenant, user = f"t{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}"
    member = hs256_token(tenant, sub=user, role="member")
    viewer = hs256_token(tenant, sub=user, role="viewer")
    page = ChatPage(browser, base_url(scripted_gateway) + "/")
    await in_browser(page.open)
    await in_browser(page.record_sent_frames)

    await in_browser(page.sign_in, member)
    await in_browser(page.wait_signed_in)
    assert page.shown("new-chat") and page.shown("composer")
    assert not page.shown("read-only-notice")
    with scripted_default(scripted_model, Script([Reply(text="Read me later.")])):
        await in_browser(page.send, "Write something to read")
        answer = await in_browser(page.wait_answers, 1)
        await in_browser(page.wait_run_status, "finished")
    assert answer.text.endswith("Read me later.")
    await in_browser(page.wait_session_current, "Write something to read")
    assert [f["type"] for f in await in_browser(page.sent_frames)] == ["message"]
    await in_browser(page.sign_out)

    await in_browser(page.record_sent_frames)
    await in_browser(page.sign_in, viewer)
    await in_browser(page.wait_signed_in)
    await in_browser(page.until, lambda: page.shown("read-only-notice"), "the read-only notice")
    await in_browser(page.open_session, "Write something to read")
    answer = await in_browser(page.wait_answers, 1)
    await in_browser(page.wait_run_status, "finished")
    assert answer.text.endswith("Read me later.")
    assert "Write something to read" in page.messages("user")[0].text
    assert [f["type"] for f in await in_browser(page.sent_frames)] == ["hello"]
    await in_browser(assert_read_only, page, "viewer")
    await in_browser(page.screenshot, tmp_path / "viewer-reading.png")
    assert csp_violations(browser) == []


async def test_the_page_is_told_which_roles_chat_and_which_only_read(scripted_gateway):
    url = f"{base_url(scripted_gateway)}/"
    async with aiohttp.ClientSession() as http, http.get(url) as page:
        html = await page.text()
    # permissions.py: admin and member chat, a viewer reads, a CI key has no use for the page.
    assert '<body data-chat-roles="admin member" data-read-roles="admin member viewer">' in html
