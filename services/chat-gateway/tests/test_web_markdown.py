"""The web chat's Markdown renderer (markdown-it + DOMPurify, vendored), in headless Chromium
on the page the real gateway serves.

Each text goes through `RevoMarkdown.render` into the page's DOM the way app.js shows an
answer (`innerHTML`), every element then gets the events an injected handler would wait
for, and the test reads the DOM back. The rendering tests switch the page's CSP off
(DevTools' `Page.setBypassCSP`), so what they prove holds by the renderer alone; a control
test shows that the canary they watch does catch a script that runs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import aiohttp
import pytest
from browser_testkit import csp_violations, start_chromium
from gateway_testkit import base_url
from selenium import webdriver
from selenium.common.exceptions import JavascriptException

in_browser = asyncio.to_thread

# Renders `arguments[0]` as app.js shows an answer, fires the events injected handlers
# hook, and describes the result. `alert` and every handler the attacks use set
# `window.canary` (a dialog would also stall Selenium).
RENDER = """
const box = document.createElement("div");
box.className = "msg-body markdown";
document.getElementById("messages").append(box);
box.innerHTML = arguments[0] === null ? arguments[1] : window.RevoMarkdown.render(arguments[0]);
const elements = [...box.querySelectorAll("*")];
for (const el of elements) {
  for (const type of ["mouseover", "mouseenter", "focus", "load", "error", "toggle"]) {
    el.dispatchEvent(new Event(type));
  }
}
const result = {
  html: box.innerHTML,
  text: box.textContent,
  tags: [...new Set(elements.map((el) => el.localName))].sort(),
  handlers: elements.flatMap((el) => [...el.attributes]
    .filter((a) => a.name.toLowerCase().startsWith("on")).map((a) => `${el.localName} ${a.name}`)),
  links: [...box.querySelectorAll("a")].map((a) => ({
    href: a.getAttribute("href"), text: a.textContent, rel: a.getAttribute("rel"),
    target: a.getAttribute("target"), title: a.getAttribute("title"),
  })),
};
box.remove();
return result;
"""
# An image with an inline handler, made without HTML.
SET_HANDLER = """
const img = document.createElement("img");
img.setAttribute(arguments[0], arguments[1]);
img.src = "/static/none.png";
document.getElementById("messages").append(img);
"""
ARM_CANARY = "window.canary = null; window.alert = (x) => { window.canary = `alert(${x})`; };"
# A script can also run later (an `<img>` whose load fails, a timer): wait that long.
SETTLE_JS = "return await new Promise((done) => setTimeout(() => done(window.canary), 300));"

# The tags the renderer writes; nothing else may reach the page.
RENDERED_TAGS = {
    "a", "blockquote", "br", "button", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip

AUTOLINK = "http://foo.bar.baz/test?q=hello&id=22&boolean"
# CommonMark 0.31.2's link examples (spec section 6.3, 6.5, 6.6 and 6.7) with the href the
# spec gives, and markdown-it's bare links: (markdown, [(href, text), ...]).
COMMONMARK_LINKS = [
    ('[link](/uri "title")', [("/uri", "link")]),
    ("[link](/uri 'title')", [("/uri", "link")]),
    ('[link](   /uri\n  "title"  )', [("/uri", "link")]),
    ("[link]()", [("", "link")]),
    ("[link](<>)", [("", "link")]),
    ("[link](</my uri>)", [("/my%20uri", "link")]),
    ("[a](<b)c>)", [("b)c", "a")]),
    ("[link](\\(foo\\))", [("(foo)", "link")]),
    ("[link](foo(and(bar)))", [("foo(and(bar))", "link")]),
    ("[link](foo\\)\\:)", [("foo):", "link")]),
    ("[link](#fragment)", [("#fragment", "link")]),
    ("[link](http://example.com#fragment)", [("http://example.com#fragment", "link")]),
    ("[link](http://example.com?foo=3#frag)", [("http://example.com?foo=3#frag", "link")]),
    ("[link](foo\\bar)", [("foo%5Cbar", "link")]),
    ("[link](foo%20b&auml;)", [("foo%20b%C3%A4", "link")]),
    ('[link]("title")', [("%22title%22", "link")]),
    ("[link *foo **bar** `#`*](/uri)", [("/uri", "link foo bar #")]),
    ("[foo [bar](/uri)](/uri)", [("/uri", "bar")]),
    ("*[foo*](/uri)", [("/uri", "foo*")]),
    ("[foo`](/uri)`", []),
    ("[link](/my uri)", []),
    ("[link](foo\nbar)", []),
    ('[foo][bar]\n\n[bar]: /url "title"', [("/url", "foo")]),
    ("[Foo]\n\n[foo]: /url", [("/url", "Foo")]),
    ("<http://foo.bar.baz/test?q=hello&id=22&boolean>", [(AUTOLINK, AUTOLINK)]),
    ("<MAILTO:FOO@BAR.BAZ>", [("MAILTO:FOO@BAR.BAZ", "MAILTO:FOO@BAR.BAZ")]),
    ("<foo@bar.example.com>", [("mailto:foo@bar.example.com", "foo@bar.example.com")]),
    (
        "[up](../docs/cli.md) and [here](docs/cli.md)",
        [("../docs/cli.md", "up"), ("docs/cli.md", "here")],
    ),
    ("see https://example.com/a_b, then", [("https://example.com/a_b", "https://example.com/a_b")]),
]

# Targets that must never become links: the text stays, shown as the model wrote it.
REFUSED_LINKS = [
    "[a](javascript:alert(1))",
    "[a](JaVaScRiPt:alert(1))",
    "[a](&#106;avascript:alert(1))",
    "[a](java&#9;script:alert(1))",
    "[a](javascript%3Aalert(1))",
    "<javascript:alert(1)>",
    "[a](vbscript:msgbox(1))",
    "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[a](file:///etc/passwd)",
    "[a](//evil.com)",
    "[a](/\\evil.com)",
    "[a](\\\\\\\\evil.com)",
    "[a](/%5Cevil.com)",
    "[a](<\t//evil.com>)",
]

# Attempts at script, each a handler that would set the canary had it reached the DOM.
ATTACKS = [
    "http://a[b](http://c/x/onmouseover=alert(1)//)",
    '[b](http://c/" onmouseover="alert(1))',
    '[b](<http://c/" onmouseover="alert(1)>)',
    '[b](http://c/ "t\\" onmouseover=\\"alert(1)")',
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "`<img src=x onerror=alert(1)>`",
    '```"><img src=x onerror=alert(1)>\ncode\n```',
    "![x](x onerror=alert(1))",
    "| <img src=x onerror=alert(1)> |\n|---|\n| [a](javascript:alert(1)) |",
    "> <iframe src=javascript:alert(1)></iframe>",
]


@dataclass
class Rendered:
    html: str
    text: str
    tags: list[str]
    handlers: list[str]
    links: list[dict]


class MarkdownPage:
    """The chat page, loaded, with its renderer at hand. Blocking: run in a thread."""

    def __init__(self, driver: webdriver.Chrome, url: str, bypass_csp: bool) -> None:
        self.driver = driver
        driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": bypass_csp})
        driver.get(url)
        driver.execute_script(ARM_CANARY)

    def render(self, markdown: str) -> Rendered:
        return Rendered(**self.driver.execute_script(RENDER, markdown, None))

    def insert_raw(self, html: str) -> Rendered:
        """`html` straight into the DOM, as a renderer without a sanitiser would."""
        return Rendered(**self.driver.execute_script(RENDER, None, html))

    def canary(self) -> str | None:
        return self.driver.execute_script(SETTLE_JS)

    def csp_violations(self) -> list[str]:
        return csp_violations(self.driver)


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path)
    yield driver
    driver.quit()


@pytest.fixture
async def renderer(scripted_gateway, browser) -> MarkdownPage:
    """The page with its CSP off: only the renderer stands between the text and the DOM."""
    return await in_browser(MarkdownPage, browser, base_url(scripted_gateway) + "/", True)


def assert_inert(rendered: Rendered, markdown: str) -> None:
    assert not rendered.handlers, (markdown, rendered.html)
    assert set(rendered.tags) <= RENDERED_TAGS, (markdown, rendered.html)
    for link in rendered.links:
        href = re.sub(r"[\x00-\x20]", "", link["href"] or "").lower()
        assert not href.startswith(("javascript:", "vbscript:", "data:", "//", "/\\")), link
        assert link["rel"] == "noopener noreferrer" and link["target"] == "_blank", link


async def test_the_canary_catches_a_script_when_the_csp_is_off(renderer):
    # The control for the tests below: unsanitised HTML does run here.
    await in_browser(renderer.insert_raw, "<img src=x onerror=alert(1)>")
    assert await in_browser(renderer.canary) == "alert(1)"


async def test_links_get_the_hrefs_commonmark_gives_and_open_apart(renderer):
    for markdown, expected in COMMONMARK_LINKS:
        rendered = await in_browser(renderer.render, markdown)
        assert [(link["href"], link["text"]) for link in rendered.links] == expected, (
            markdown,
            rendered.html,
        )
        assert_inert(rendered, markdown)
    titled = await in_browser(renderer.render, '[link](/uri "title")')
    assert titled.links[0]["title"] == "title"


async def test_links_to_other_schemes_and_protocol_relative_hosts_stay_text(renderer):
    for markdown in REFUSED_LINKS:
        rendered = await in_browser(renderer.render, markdown)
        assert rendered.links == [], (markdown, rendered.html)
        assert_inert(rendered, markdown)
        # The model's text stays on the page as written, only not as a link.
        assert re.fullmatch(r"\[a\]\(.+\)|<javascript:alert\(1\)>", rendered.text.strip(), re.S)
    assert await in_browser(renderer.canary) is None


async def test_injected_html_and_attribute_breakouts_run_no_script(renderer):
    originals = await in_browser(renderer.render, ATTACKS[0])
    # `http://a` is a bare link and `[b](…)` a link of its own: no markup inside an href.
    assert [(link["href"], link["text"]) for link in originals.links] == [
        ("http://a", "http://a"),
        ("http://c/x/onmouseover=alert(1)//", "b"),
    ]
    for markdown in ATTACKS:
        rendered = await in_browser(renderer.render, markdown)
        assert_inert(rendered, markdown)
    assert "<img src=x onerror=alert(1)>" in (await in_browser(renderer.render, ATTACKS[4])).text
    assert await in_browser(renderer.canary) is None


async def test_answers_keep_their_code_lists_emphasis_tables_and_quotes(renderer):
    answer = (
        "# Plan\n\nHere is **the fix**, *why* and ~~not this~~:\n"
        "a second line with `inline <code>`.\n\n"
        "```python\nprint('fixed')\n```\n\n"
        "    indented code\n\n"
        "1. first\n2. second\n   - nested\n\n"
        "3) third\n\n"
        "> quoted\n\n"
        "| name | size |\n|:-----|-----:|\n| a.py | 12 |\n\n---\n"
    )
    rendered = await in_browser(renderer.render, answer)
    html = rendered.html
    assert "<h1>Plan</h1>" in html
    assert "<strong>the fix</strong>" in html and "<em>why</em>" in html
    assert "<s>not this</s>" in html
    assert "<br>" in html and "<code>inline &lt;code&gt;</code>" in html
    assert (
        '<div class="code-block"><div class="code-head"><span class="code-lang">python</span>'
        '<button type="button" class="code-copy">Copy</button></div>'
        "<pre><code class=\"language-python\">print('fixed')</code></pre></div>"
    ) in html
    assert '<span class="code-lang">text</span>' in html and "indented code</code>" in html
    flat = html.replace("\n", "")
    assert "<ol><li>first</li><li>second<ul><li>nested</li></ul></li></ol>" in flat
    assert '<ol start="3">' in html
    assert "<blockquote>" in html and "quoted" in html
    assert '<div class="table-wrap"><table>' in html
    assert '<th class="align-left">name</th>' in html and '<td class="align-right">12</td>' in html
    assert "<hr>" in html
    assert_inert(rendered, answer)


async def test_the_page_loads_its_vendored_renderer_under_its_csp(scripted_gateway, browser):
    page = await in_browser(MarkdownPage, browser, base_url(scripted_gateway) + "/", False)
    loaded = await in_browser(
        browser.execute_script,
        "return [typeof window.markdownit, typeof window.DOMPurify, typeof window.RevoMarkdown]",
    )
    assert loaded == ["function", "function", "object"]
    assert (await in_browser(page.render, "**bold**")).html.startswith("<p><strong>bold")
    assert await in_browser(page.csp_violations) == []
    # The CSP is a layer of its own (Trusted Types): HTML that did not come through
    # DOMPurify is refused, and so is an inline handler set as an attribute.
    with pytest.raises(JavascriptException, match="TrustedHTML"):
        await in_browser(page.insert_raw, "<img src=x onerror=alert(1)>")
    with pytest.raises(JavascriptException, match="TrustedScript"):
        await in_browser(browser.execute_script, SET_HANDLER, "onerror", "alert(1)")
    assert await in_browser(page.canary) is None
    violations = await in_browser(page.csp_violations)
    assert len(violations) == 2 and "TrustedHTML" in violations[0], violations


async def test_the_vendored_files_are_served_as_scripts_the_csp_allows(scripted_gateway):
    url = base_url(scripted_gateway)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/") as page:
            html = await page.text()
            csp = dict(
                (directive.split()[0], directive.split()[1:])
                for directive in page.headers["Content-Security-Policy"].split(";")
            )
        assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'none'"]
        assert csp["style-src"] == ["'self'"]
        assert csp["require-trusted-types-for"] == ["'script'"]
        assert csp["trusted-types"] == ["dompurify"]
        assert not any("unsafe" in source for sources in csp.values() for source in sources)
        scripts = re.findall(r'<script src="(/static/[\w./-]+)\?v=\w+"', html)
        assert scripts == [
            "/static/vendor/markdown-it.umd.min.js",
            "/static/vendor/purify.min.js",
            "/static/markdown.js",
            "/static/app.js",
        ]
        for name, kind in [
            ("vendor/markdown-it.umd.min.js", "text/javascript"),
            ("vendor/purify.min.js", "text/javascript"),
            ("vendor/markdown-it.LICENSE.txt", "text/plain"),
            ("vendor/dompurify.LICENSE.txt", "text/plain"),
        ]:
            async with http.get(f"{url}/static/{name}") as response:
                assert response.status == 200, name
                assert response.content_type == kind, name
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                body = await response.read()
                assert len(body) > 5_000, name
        for missing in ("vendor/README.md", "vendor", "vendor/nothing.js"):
            async with http.get(f"{url}/static/{missing}") as response:
                assert response.status == 404, missing
