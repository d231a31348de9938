"""The card-markdown renderer of the demo page: escape first, then only its own tags."""

from __future__ import annotations

import pytest

from cds_service.api.markdown import render, safe_url
from cds_service.cards import escape_markdown


class TestMarkdown:
    def test_paragraphs_lists_strong_and_links(self):
        html = render(
            "One **two** *three*\n\n**Data used**\n\n- a\n- b\n\n[AASM](https://x.org/a?b=1&c=2)"
        )
        assert html == (
            "<p>One <strong>two</strong> <em>three</em></p>\n"
            "<p><strong>Data used</strong></p>\n"
            "<ul><li>a</li><li>b</li></ul>\n"
            '<p><a href="https://x.org/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer">AASM</a></p>'
        )

    @pytest.mark.parametrize(
        "text",
        [
            "<script>alert(1)</script>",
            '<img src=x onerror="alert(1)">',
            "**<b onmouseover=alert(1)>x</b>**",
            "`<script>`",
            '[x](https://a.org/"onmouseover="alert(1))',
        ],
    )
    def test_markup_in_the_text_never_becomes_markup(self, text: str):
        html = str(render(text))
        assert "<script" not in html and "<img" not in html and "<b " not in html
        assert '"onmouseover' not in html

    @pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "vbscript:x", ""])
    def test_links_other_than_http_are_text(self, url: str):
        assert "<a" not in str(render(f"[click]({url})"))
        assert safe_url(url) == "#"

    def test_escaped_patient_text_shows_literally(self):
        """cards.escape_markdown output renders as the original text, escaped for HTML."""
        patient = "Lumbar *radiculopathy* [L5](javascript:x) <i>"
        html = str(render(f"- Problem list: {escape_markdown(patient)}"))
        assert html == (
            "<ul><li>Problem list: Lumbar *radiculopathy* [L5](javascript:x) &lt;i&gt;</li></ul>"
        )
