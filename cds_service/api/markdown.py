"""The small markdown subset of card details, rendered to HTML for the demo page, safely.

Everything is HTML-escaped first; only then are the few constructs cards use turned into
tags that this module writes itself: paragraphs, ``- `` lists, ``**strong**``, ``*em*`` /
``_em_``, ```code``` and ``[label](http(s) URL)`` links. Backslash escapes (which
``cards.escape_markdown`` adds to patient text) show the character literally. No text from a
card or a patient record can therefore reach the page as markup, and a link can only be
http(s) (never ``javascript:``).
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])")
_LIST_ITEM = re.compile(r"^\s*[-*]\s+(.*)$")
SAFE_SCHEMES = ("http://", "https://")


def safe_url(url: object) -> str:
    """The URL when it is http(s), else ``#`` (no ``javascript:`` or ``data:`` links)."""
    text = str(url or "").strip()
    return text if text.lower().startswith(SAFE_SCHEMES) else "#"


def render(text: str | None) -> Markup:
    """Card markdown as HTML in which only this module's own tags are markup."""
    blocks = re.split(r"\n\s*\n", (text or "").replace("\r\n", "\n").replace("\x00", ""))
    return Markup("\n").join(_block(block) for block in blocks if block.strip())


def _block(block: str) -> Markup:
    """A paragraph, a list, or paragraphs and lists in the order their lines come."""
    parts: list[Markup] = []
    para: list[str] = []
    items: list[str] = []
    for line in block.split("\n"):
        item = _LIST_ITEM.match(line)
        if item and not line.lstrip().startswith("**"):
            if para:
                parts.append(_paragraph(para))
                para = []
            items.append(item.group(1))
        elif line.strip():
            if items:
                parts.append(_list(items))
                items = []
            para.append(line.strip())
    if para:
        parts.append(_paragraph(para))
    if items:
        parts.append(_list(items))
    return Markup("\n").join(parts)


def _paragraph(lines: list[str]) -> Markup:
    return Markup("<p>{}</p>").format(Markup("<br>\n").join(inline(line) for line in lines))


def _list(items: list[str]) -> Markup:
    rendered = Markup("").join(Markup("<li>{}</li>").format(inline(item)) for item in items)
    return Markup("<ul>{}</ul>").format(rendered)


def inline(text: str) -> Markup:
    """One line: escape everything, then add the tags for code, links, strong and em."""
    held: list[str] = []  # finished HTML fragments, out of reach of the later patterns

    def hold(fragment: str) -> str:
        held.append(fragment)
        return f"\x00{len(held) - 1}\x00"

    html = str(escape(_ESCAPED.sub(lambda m: hold(str(escape(m.group(1)))), text)))
    html = _CODE.sub(lambda m: hold(f"<code>{m.group(1)}</code>"), html)
    html = _LINK.sub(lambda m: hold(_link(m.group(1), m.group(2))), html)
    html = _emphasis(html)
    while _PLACEHOLDER.search(html):  # a link label may hold an escaped character
        html = _PLACEHOLDER.sub(lambda m: held[int(m.group(1))], html)
    return Markup(html)


def _emphasis(html: str) -> str:
    return _EM.sub(r"<em>\2</em>", _STRONG.sub(r"<strong>\1</strong>", html))


def _link(label: str, url: str) -> str:
    """A link to an http(s) URL (already escaped, so safe in the attribute), else its label."""
    if safe_url(url) == "#":
        return _emphasis(label)
    return f'<a href="{url}" target="_blank" rel="noopener noreferrer">{_emphasis(label)}</a>'
