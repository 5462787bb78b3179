// A small Markdown renderer for agents' answers: paragraphs, headings, bold, italic,
// strikethrough, inline code, fenced code blocks (with their language), lists (nested by
// indentation), block quotes, tables, rules and links.
//
// Safety: the text is HTML-escaped before any markup is recognised, and every tag in the
// output is one this file writes, so model output can never inject HTML or script. Links
// keep only http(s), mailto, relative and #anchor targets.
(function () {
  "use strict";

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  // -- inline ---------------------------------------------------------------------------

  const SAFE_URL = /^(https?:\/\/|mailto:|\/(?!\/)|#|\.{1,2}\/)/i;

  // `text` is already escaped; code spans and links are set aside as numbered slots so
  // emphasis inside them is left alone.
  function inline(text) {
    const slots = [];
    const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
    let out = text.replace(/\u0000/g, "");
    out = out.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, __, code) =>
      keep(`<code>${code.trim() || code}</code>`));
    out = out.replace(/\[([^\]\n]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)/g, (whole, label, url) =>
      SAFE_URL.test(url) ? keep(link(url, emphasis(label))) : label);
    out = out.replace(BARE_URL, (_, before, found) => {
      const url = found.replace(/[.,;:!?)]+$/, "");
      return before + keep(link(url, url)) + found.slice(url.length);
    });
    out = emphasis(out);
    // Slots can hold slots (a code span in a link's label): restore until none is left.
    while (/\u0000\d+\u0000/.test(out)) {
      out = out.replace(/\u0000(\d+)\u0000/g, (_, i) => slots[Number(i)]);
    }
    return out;
  }

  // A bare URL in the text, up to a space or an escaped <, >, " or '.
  const BARE_URL = /(^|[\s(]|&lt;)(https?:\/\/(?:(?!&(?:lt|gt|quot|#39);)\S)+)/g;

  function link(url, label) {
    return `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`;
  }

  function emphasis(text) {
    return text
      .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
      .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>")
      .replace(/(^|[^*\w])\*([^\s*](?:[^*]*?[^\s*])?)\*(?!\*)/g, "$1<em>$2</em>")
      .replace(/(^|[^\w])_([^\s_](?:[^_]*?[^\s_])?)_(?!\w)/g, "$1<em>$2</em>");
  }

  // -- blocks ---------------------------------------------------------------------------

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w#+.-]*)/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}&gt;\s?/;
  const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const TABLE_SEPARATOR = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function startsBlock(line, next) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      ITEM.test(line) || isTableStart(line, next);
  }

  function isTableStart(line, next) {
    return line.includes("|") && next !== undefined && TABLE_SEPARATOR.test(next) &&
      next.includes("-");
  }

  // Lines (escaped) to HTML.
  function blocks(lines) {
    const html = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        i += 1;
        continue;
      }
      const parsed = fence(lines, i) || heading(lines, i) || rule(lines, i) || quote(lines, i) ||
        list(lines, i) || table(lines, i) || paragraph(lines, i);
      html.push(parsed.html);
      i = parsed.next;
    }
    return html.join("\n");
  }

  function fence(lines, i) {
    const open = FENCE.exec(lines[i]);
    if (!open) return null;
    const marker = open[1];
    const lang = open[2].toLowerCase();
    const body = [];
    let j = i + 1;
    // An unclosed fence runs to the end (an answer still being written).
    while (j < lines.length && !lines[j].trim().startsWith(marker)) body.push(lines[j++]);
    const label = lang || "text";
    const cls = lang ? ` class="language-${lang.replace(/[^\w-]/g, "")}"` : "";
    const html = `<div class="code-block"><div class="code-head"><span class="code-lang">${label}` +
      `</span><button type="button" class="code-copy">Copy</button></div>` +
      `<pre><code${cls}>${body.join("\n")}</code></pre></div>`;
    return { html, next: j + 1 };
  }

  function heading(lines, i) {
    const match = HEADING.exec(lines[i]);
    if (!match) return null;
    const level = match[1].length;
    return { html: `<h${level}>${inline(match[2])}</h${level}>`, next: i + 1 };
  }

  function rule(lines, i) {
    return RULE.test(lines[i]) ? { html: "<hr>", next: i + 1 } : null;
  }

  function quote(lines, i) {
    if (!QUOTE.test(lines[i])) return null;
    const body = [];
    let j = i;
    while (j < lines.length && lines[j].trim() && QUOTE.test(lines[j])) {
      body.push(lines[j].replace(QUOTE, ""));
      j += 1;
    }
    return { html: `<blockquote>${blocks(body)}</blockquote>`, next: j };
  }

  function list(lines, i) {
    const first = ITEM.exec(lines[i]);
    if (!first) return null;
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const items = [];
    let loose = false;
    const sibling = (line) => {
      const item = ITEM.exec(line || "");
      return item && item[1].length === indent && /\d/.test(item[2]) === ordered ? item : null;
    };
    let j = i;
    while (j < lines.length) {
      const item = sibling(lines[j]);
      if (!item) break;
      const body = [item[3]];
      j += 1;
      // The item goes on while lines are indented past its marker (or blank between such).
      while (j < lines.length) {
        const line = lines[j];
        if (!line.trim()) {
          const after = lines[j + 1];
          if (after !== undefined && leading(after) > indent && after.trim()) {
            body.push("");
            loose = true;
            j += 1;
            continue;
          }
          break;
        }
        if (leading(line) > indent) {
          body.push(line.slice(Math.min(leading(line), indent + 2)));
        } else if (!ITEM.test(line) && !startsBlock(line, lines[j + 1])) {
          body.push(line.trim()); // a lazy continuation of the item's paragraph
        } else {
          break;
        }
        j += 1;
      }
      items.push(body);
      if (j < lines.length && !lines[j].trim() && sibling(lines[j + 1])) {
        loose = true;
        j += 1;
      }
    }
    const tag = ordered ? "ol" : "ul";
    const start = ordered && parseInt(first[2], 10) !== 1 ? ` start="${parseInt(first[2], 10)}"` : "";
    const html = items.map((body) => `<li>${listItem(body, loose)}</li>`).join("");
    return { html: `<${tag}${start}>${html}</${tag}>`, next: j };
  }

  function listItem(body, loose) {
    const rendered = blocks(body);
    // A tight item's lone paragraph is shown without its <p> margins.
    return loose ? rendered : rendered.replace(/^<p>([\s\S]*?)<\/p>/, "$1");
  }

  function leading(line) {
    return line.length - line.trimStart().length;
  }

  function table(lines, i) {
    if (!isTableStart(lines[i], lines[i + 1])) return null;
    const cells = (line) => line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|")
      .map((c) => inline(c.trim()));
    const head = cells(lines[i]);
    const rows = [];
    let j = i + 2;
    while (j < lines.length && lines[j].trim() && lines[j].includes("|")) rows.push(cells(lines[j++]));
    const th = head.map((c) => `<th>${c}</th>`).join("");
    const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
    return {
      html: `<div class="table-wrap"><table><thead><tr>${th}</tr></thead><tbody>${tr}</tbody></table></div>`,
      next: j,
    };
  }

  function paragraph(lines, i) {
    const body = [lines[i].trim()];
    let j = i + 1;
    while (j < lines.length && lines[j].trim() && !startsBlock(lines[j], lines[j + 1])) {
      body.push(lines[j].trim());
      j += 1;
    }
    return { html: `<p>${inline(body.join("\n")).replace(/\n/g, "<br>")}</p>`, next: j };
  }

  function render(markdown) {
    const text = escapeHtml(String(markdown ?? "").replace(/\r\n?/g, "\n").replace(/\t/g, "    "));
    return blocks(text.split("\n"));
  }

  window.RevoMarkdown = { render, escapeHtml };
})();
