// Agents' answers, which are model output and so untrusted, as HTML: markdown-it parses
// CommonMark (plus tables, strikethrough and bare links), DOMPurify sanitises what it
// made. Both are vendored in vendor/ (see vendor/README.md for versions and updates).
// `render` returns TrustedHTML where the browser has Trusted Types: the page's CSP lets no
// other string reach innerHTML (`require-trusted-types-for 'script'; trusted-types
// dompurify`), so the sanitiser is the one way into the DOM.
//
// Safety, in layers: markdown-it runs with raw HTML off, so `<img onerror=…>` stays
// text; a link whose target is not http(s), mailto or a same-origin relative path is not
// made a link at all; DOMPurify then keeps only the tags and attributes this file's
// renderer writes, and checks every href again. The page's CSP (script-src 'self') is a
// last layer, not the one relied on.
(function () {
  "use strict";

  const SCHEMES = new Set(["http", "https", "mailto"]);
  // A scheme as browsers find one: letters first, up to the first colon.
  const SCHEME = /^([a-z][a-z0-9+.-]*):/i;
  // `//host` and `/\host` (browsers read a backslash as a slash) leave this origin.
  const OTHER_HOST = /^[\\/]{2}/;
  // Browsers ignore these around a URL, and tabs and newlines inside it.
  const IGNORED = /[\u0000-\u0020\u007f-\u009f]/g;

  // Whether `href` may be a link on this page: http(s), mailto, or a relative path that
  // stays on this origin. Judged on the decoded text too (markdown-it hands over
  // percent-encoded targets: `/\evil.com` arrives as `/%5Cevil.com`), erring on refusal.
  function safeHref(href) {
    return [href, decoded(href)].every((text) => {
      const compact = String(text).replace(IGNORED, "");
      const scheme = SCHEME.exec(compact);
      if (scheme) return SCHEMES.has(scheme[1].toLowerCase());
      return !OTHER_HOST.test(compact) && sameOrigin(href);
    });
  }

  function decoded(href) {
    try {
      return decodeURIComponent(href);
    } catch {
      return href; // a stray `%`: the text as it is
    }
  }

  function sameOrigin(href) {
    try {
      return new URL(href, document.baseURI).origin === window.location.origin;
    } catch {
      return false;
    }
  }

  // -- markdown-it: the parser and the HTML it writes -----------------------------------

  const md = window.markdownit({ html: false, linkify: true, breaks: true });
  md.validateLink = safeHref;
  md.disable("image"); // an answer shows no pictures: `![x](y)` stays text and a link
  const escapeHtml = md.utils.escapeHtml;

  // A code block with its language and a Copy button (app.js handles the click).
  function codeBlock(code, info) {
    const lang = (info || "").trim().split(/\s+/)[0].toLowerCase();
    const cls = lang ? ` class="language-${lang.replace(/[^\w-]/g, "")}"` : "";
    return `<div class="code-block"><div class="code-head"><span class="code-lang">` +
      `${escapeHtml(lang || "text")}</span><button type="button" class="code-copy">Copy` +
      `</button></div><pre><code${cls}>${escapeHtml(code.replace(/\n$/, ""))}</code></pre></div>\n`;
  }

  md.renderer.rules.fence = (tokens, i) => codeBlock(tokens[i].content, tokens[i].info);
  md.renderer.rules.code_block = (tokens, i) => codeBlock(tokens[i].content, "");
  // Wide tables scroll on their own instead of widening the chat.
  md.renderer.rules.table_open = () => '<div class="table-wrap"><table>\n';
  md.renderer.rules.table_close = () => "</table></div>\n";

  // A column's alignment as a class: the CSP allows no inline style attributes.
  function alignedCell(tokens, i, options, env, self) {
    const token = tokens[i];
    const align = /text-align:(left|center|right)/.exec(token.attrGet("style") || "");
    token.attrs = (token.attrs || []).filter(([name]) => name !== "style");
    if (align) token.attrJoin("class", `align-${align[1]}`);
    return self.renderToken(tokens, i, options);
  }
  md.renderer.rules.th_open = alignedCell;
  md.renderer.rules.td_open = alignedCell;

  // -- DOMPurify: only what the renderer above writes -----------------------------------

  const purify = window.DOMPurify(window); // an instance of our own: its hooks stay here
  const POLICY = {
    ALLOWED_TAGS: [
      "a", "blockquote", "br", "button", "code", "div", "em", "h1", "h2", "h3", "h4", "h5",
      "h6", "hr", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th",
      "thead", "tr", "ul",
    ],
    ALLOWED_ATTR: ["class", "href", "start", "title", "type"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_TRUSTED_TYPE: true, // made by DOMPurify's own policy, `dompurify`
  };

  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName !== "A") return;
    if (node.hasAttribute("href") && !safeHref(node.getAttribute("href"))) {
      node.removeAttribute("href");
    }
    // Opened apart from the chat, which learns nothing of the page it opens, nor it of us.
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  });

  function render(markdown) {
    return purify.sanitize(md.render(String(markdown ?? "")), POLICY);
  }

  window.RevoMarkdown = { render };
})();
