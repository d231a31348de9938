"""The knowledge base is checked at load: broken definitions fail start-up, not a chart."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from cds_service.cards import CardRenderer
from cds_service.clinical.engine import patient_view_rules
from cds_service.knowledge import Knowledge, KnowledgeError
from cds_service.resources import shipped_dir
from tests.contract import TOPIC_CODES

CARDS = shipped_dir("cards")


@pytest.fixture
def cards_copy(tmp_path) -> Path:
    target = tmp_path / "cards"
    shutil.copytree(CARDS, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), "utf-8")


def test_shipped_knowledge_loads_with_a_rule_for_every_card():
    knowledge = Knowledge.load(CARDS)
    assert list(knowledge.cards) == list(patient_view_rules(knowledge.dosing))
    CardRenderer(knowledge)  # builds and validates every suggestion resource


def test_cards_are_in_contract_order():
    """The order of docs/card-topics.md, the published contract."""
    assert tuple(Knowledge.load(CARDS).cards) == TOPIC_CODES


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ('suggestions = ["iron-studies"]', 'suggestions = ["nope"]', "unknown suggestion"),
        ("consider iron studies (ferritin", "consider {mystery} (ferritin", "undeclared"),
        ("last_ferritin = 16", "last_ferritin = 90", "summary can reach"),
        ('url = "https://doi.org/10.5664/jcsm.11390"', 'url = "http://x.org"', "https"),
        ('indicator = "info"', 'indicator = "loud"', "indicator"),
        ('type = "create"', 'type = "explode"', "type"),
    ],
)
def test_inconsistent_card_fails_to_load(cards_copy, old, new, complaint):
    edit(cards_copy / "iron-studies-due.toml", old, new)
    with pytest.raises(KnowledgeError, match=complaint):
        Knowledge.load(cards_copy)


def test_suggestion_that_is_not_valid_fhir_fails_at_start_up(cards_copy):
    edit(cards_copy / "iron-studies-due.toml", 'code = "2276-4"', "code = 2276")
    with pytest.raises(KnowledgeError):
        CardRenderer(Knowledge.load(cards_copy))


def test_file_name_must_be_the_topic(cards_copy):
    (cards_copy / "iron-studies-due.toml").rename(cards_copy / "iron.toml")
    with pytest.raises(KnowledgeError, match="file name"):
        Knowledge.load(cards_copy)


def test_broken_value_set_fails_to_load(cards_copy):
    (cards_copy / "valuesets" / "ferritin.json").write_text('{"resourceType": "ValueSet"}')
    with pytest.raises(KnowledgeError, match=r"ferritin\.json"):
        Knowledge.load(cards_copy)


def test_missing_directory_fails_to_load(tmp_path):
    with pytest.raises(KnowledgeError):
        Knowledge.load(tmp_path / "nowhere")


def test_every_card_cites_evidence_and_override_reasons():
    for path in CARDS.glob("*.toml"):
        card = tomllib.loads(path.read_text("utf-8"))
        assert card["source"]["url"].startswith("https://"), path.name
        assert card["override_reasons"], path.name
