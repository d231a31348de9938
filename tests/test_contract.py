"""The published card contract (docs/card-topics.md), the cards and the README agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests import contract

CARDS = contract.ROOT / "cards"


def _card_files() -> dict[str, dict]:
    return {
        path.stem: tomllib.loads(path.read_text("utf-8")) for path in sorted(CARDS.glob("*.toml"))
    }


def test_the_contract_lists_fifteen_topics_in_order():
    rows = contract.topics()
    assert len(rows) == 15
    assert [row.order for row in rows] == list(range(1, 16))
    assert len(set(contract.TOPIC_CODES)) == 15


def test_every_contract_topic_has_exactly_one_card_file_with_its_order_and_display():
    cards = _card_files()
    assert sorted(cards) == sorted(contract.TOPIC_CODES)
    for row in contract.topics():
        card = cards[row.code]
        assert card["topic"] == row.code, f"cards/{row.code}.toml names another topic"
        assert card["order"] == row.order, row.code
        assert card["display"] == row.display, row.code


def test_the_readme_topic_table_is_generated_from_the_contract():
    readme = contract.README.read_text("utf-8")
    assert contract.readme_block(readme) == contract.readme_table(), (
        "the README's topic table differs from docs/card-topics.md: run `make docs`"
    )


def test_readme_table_renders_each_row_from_the_contract_columns():
    row = contract.Topic(1, "x-y", "X", "when **a**", "info", "none")
    table = contract.readme_table((row,))
    assert "| `x-y` | when **a** | info |" in table.splitlines()


def test_the_loaded_knowledge_base_has_the_contract_topics():
    from tests import builders as b

    assert set(b.KNOWLEDGE.cards) == set(contract.TOPIC_CODES)


def test_no_file_in_the_repository_depends_on_a_folder_outside_it():
    """A clone of the repository alone must have everything: nothing names the team's
    reference folder or a build machine's absolute path."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=contract.ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    forbidden = ("../" + "shared", "/work/" + "shared", "/" + "root/", "knowledge" + ".md")
    offenders = []
    for name in filter(None, tracked):
        path = contract.ROOT / name.decode()
        if not path.is_file() or path.suffix in {".png", ".ico"}:
            continue
        text = path.read_text("utf-8", errors="replace")
        offenders += [f"{name.decode()}: {word}" for word in forbidden if word in text]
    assert offenders == []


def test_contract_page_and_evidence_page_link_each_other():
    card_topics = contract.CONTRACT.read_text("utf-8")
    evidence = (contract.ROOT / "docs" / "evidence.md").read_text("utf-8")
    assert "(evidence.md)" in card_topics and "(card-topics.md)" in evidence
    assert Path(contract.ROOT / "CHANGELOG.md").is_file()
