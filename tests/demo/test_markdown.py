"""The card-markdown renderer of the demo page: CommonMark as an EHR renders it, never markup."""

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
            "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
            '<p><a href="https://x.org/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer">AASM</a></p>'
        )

    def test_a_javascript_link_stays_the_literal_text(self):
        """The old renderer cut it to 'x)'; an EHR shows what the text says."""
        assert render("[x](javascript:alert(1))") == "<p>[x](javascript:alert(1))</p>"

    @pytest.mark.parametrize(
        ("text", "tags"),
        [
            ("1. one\n2. two", ["<ol>", "<li>one</li>", "<li>two</li>"]),
            ("## Dosing", ["<h2>Dosing</h2>"]),
            ("> quoted", ["<blockquote>", "<p>quoted</p>"]),
            ("a line\nwrapped", ["<p>a line\nwrapped</p>"]),
        ],
    )
    def test_commonmark_blocks_render_as_in_an_ehr(self, text: str, tags: list[str]):
        html = str(render(text))
        assert all(tag in html for tag in tags), html

    def test_an_image_is_never_fetched(self):
        assert "<img" not in str(render("![pixel](https://tracker.example/p.png)"))

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
            "<ul>\n<li>Problem list: Lumbar *radiculopathy* [L5](javascript:x) &lt;i&gt;</li>\n"
            "</ul>"
        )
