"""Card details rendered to HTML for the demo page as an EHR would render them, safely.

CDS Hooks card details are CommonMark. They are rendered by markdown-it-py (CommonMark, as EHR
card viewers do: ordered lists, headings and quotes included) with raw HTML off, so markup in a
card or a patient record is shown as text, never as tags; images off, so card text makes the
browser fetch nothing; and links only to http(s) URLs, opened in a new tab without an opener.
A link to any other scheme (``javascript:``, ``data:``) stays literal text.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup

SAFE_SCHEMES = ("http://", "https://")


def safe_url(url: object) -> str:
    """The URL when it is http(s), else ``#`` (no ``javascript:`` or ``data:`` links)."""
    text = str(url or "").strip()
    return text if text.lower().startswith(SAFE_SCHEMES) else "#"


def _http_only(url: str) -> bool:
    return safe_url(url) != "#"


def _unlink_unsafe(state: StateCore) -> None:
    """A link whose destination validateLink never saw (``[x]()``) keeps only its label."""
    for block in state.tokens:
        if not block.children:
            continue
        keep: list[Token] = []
        dropping = False
        for token in block.children:
            if token.type == "link_open" and not _http_only(str(token.attrGet("href") or "")):
                dropping = True
            elif token.type == "link_close" and dropping:
                dropping = False
            else:
                keep.append(token)
        block.children = keep


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """Every link opens in a new tab, without access to this page."""
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


_MD = MarkdownIt("commonmark", {"html": False}).disable("image")
_MD.validateLink = _http_only  # type: ignore[method-assign]
_MD.core.ruler.push("unlink_unsafe", _unlink_unsafe)
_MD.add_render_rule("link_open", _link_open)


def render(text: str | None) -> Markup:
    """Card markdown as HTML in which only the renderer's own tags are markup."""
    return Markup(_MD.render((text or "").replace("\x00", "")).strip())
