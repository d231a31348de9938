"""`rls-cds kb check [DIR]` and the start-up check that card text types no number
(docs/card-topics.md, "Card text"; issue 15 point 9)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.knowledge import Knowledge, KnowledgeError
from cds_service.resources import shipped_dir

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


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["kb", "check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_shipped_cards_pass(capsys):
    code, out, err = run(capsys, str(CARDS))
    assert (code, err) == (0, "")
    assert "knowledge base OK" in out


def test_default_directory_is_the_shipped_cards(capsys):
    assert run(capsys)[0] == 0


def test_every_seeded_problem_is_reported_at_once_with_file_and_field(capsys, cards_copy):
    edit(cards_copy / "gabapentinoid-renal-dose.toml",
         "above the label limit of {limit} mg/day {kidney}\"",
         "above the label limit of 1400 mg/day {kidney}\"")  # fmt: skip
    edit(cards_copy / "iron-studies-due.toml", "{iron_free_hours} hours", "{bogus} hours")
    edit(cards_copy / "renal-function-due.toml", 'code = "51990-0"', 'code = ""')
    (cards_copy / "valuesets" / "parkinson-disease.json").unlink()
    edit(cards_copy / "kidney-disease.toml", "egfr_below = 60", 'egfr_below = "sixty"')
    code, out, err = run(capsys, str(cards_copy))
    assert code == 1 and out == ""
    lines = err.splitlines()
    expected = [
        "gabapentinoid-renal-dose.toml: variants.above-limit.summary: typed number '1400'",
        "iron-studies-due.toml: variants.never.detail: undeclared ['bogus']",
        "renal-function-due.toml: suggestions.metabolic-panel.actions.0.coding.0.code",
        "valuesets/parkinson-disease.json: -: missing",
        "kidney-disease.toml: thresholds.egfr_below",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert lines[-1].endswith("problem(s)")
    assert "Traceback" not in err


def test_a_toml_syntax_error_names_the_file(capsys, cards_copy):
    edit(cards_copy / "prior-dvt.toml", "order = 15", "order = = 15")
    code, _, err = run(capsys, str(cards_copy))
    assert code == 1
    assert err.startswith("prior-dvt.toml: -: ")


def test_a_missing_directory_is_one_problem(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path / "nowhere"))
    assert code == 1 and "not a directory" in err


def test_a_critical_card_without_cancel_is_a_problem(capsys, cards_copy):
    edit(cards_copy / "gabapentinoid-renal-dose.toml",
         'suggestions = ["adjust-dose", "cancel"]', 'suggestions = ["adjust-dose"]')  # fmt: skip
    code, _, err = run(capsys, str(cards_copy))
    assert code == 1
    assert "variants.draft-above-limit.suggestions: a card that can be critical" in err


def test_an_invalid_suggested_resource_is_a_problem(capsys, cards_copy):
    edit(cards_copy / "renal-function-due.toml",
         'code = "51990-0"', 'code = " 51990  0"')  # fmt: skip
    code, _, err = run(capsys, str(cards_copy))
    assert code == 1
    assert "renal-function-due.toml: suggestions.metabolic-panel.actions[0]" in err


class TestTypedNumbers:
    """Every number in card text is a threshold placeholder or a declared literal."""

    @pytest.mark.parametrize(
        ("file", "old", "new"),
        [
            ("kidney-disease.toml", "than {chronic_days:period}", "than 3 months"),
            ("iron-studies-due.toml", "{iron_free_hours} h)", "24 h)"),
            ("peripheral-arterial-disease.toml", "{abi_pad_at_most:.2f}", "0.90"),
            ("sedating-antihistamine.toml", 'prose_literals = ["loratadine 10 mg", ',
             "prose_literals = ["),
        ],
    )  # fmt: skip
    def test_start_up_fails_on_a_typed_number(self, cards_copy, file, old, new):
        edit(cards_copy / file, old, new)
        with pytest.raises(KnowledgeError, match="typed number"):
            Knowledge.load(cards_copy)

    def test_a_threshold_edited_by_a_clinical_owner_changes_the_text(self, cards_copy):
        edit(cards_copy / "iron-studies-due.toml", "iron_free_hours = 24", "iron_free_hours = 12")
        card = Knowledge.load(cards_copy).cards["iron-studies-due"]
        from cds_service.knowledge import fill

        assert "12 hours" in fill(card.variants["never"].detail, {}, card.thresholds)
