"""`rls-cds feedback-report`: per topic cards issued, accepted, overridden, the override rate
and the top override reasons, and feedback on unknown cards; table, JSON (stable) and CSV."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta

import pytest

from cds_service import cli
from tests import builders as b
from tests.feedback.conftest import (
    PATIENT_VIEW,
    accepted,
    cards_by_topic,
    feedback_url,
    flush,
    legacy_feedback,
    overridden,
    patient_view_body,
    post_json,
)

IRON = "iron-below-target"
RENAL = "renal-function-due"
ANTIHISTAMINE = "sedating-antihistamine"
TOPIC_KEYS = ["topic", "issued", "accepted", "overridden", "override_rate", "top_override_reasons"]


@pytest.fixture
def report(store_backend, monkeypatch, capsys, tmp_path):
    """Run `rls-cds feedback-report ARGS` on the test's store; its stdout."""
    monkeypatch.setenv("DATABASE_URL", store_backend.url)
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))

    def run(*args: str) -> str:
        capsys.readouterr()
        assert cli.main(["feedback-report", *args]) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        return captured.out

    return run


def send(client, items: list[dict]) -> None:
    response = post_json(client, feedback_url(), {"feedback": items})
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def history(store_backend, app, client) -> None:
    """Six patients with iron-below-target and sedating-antihistamine (the first also
    renal-function-due), and their feedback; then all of it sent again (no double counts);
    and two items about unknown cards stored before the service refused those (legacy)."""
    cards = [
        cards_by_topic(
            post_json(client, PATIENT_VIEW, patient_view_body(f"q{n}", kidney_ok=n != 0))
        )
        for n in range(6)
    ]
    flush(app)
    iron = [c[IRON] for c in cards]
    anti = [c[ANTIHISTAMINE] for c in cards]
    items = [
        accepted(iron[0]),
        accepted(iron[1]),
        overridden(iron[2]["uuid"], "not-clinically-relevant"),
        overridden(iron[3]["uuid"], None),
        accepted(anti[0]),
        overridden(anti[1]["uuid"], "benefit-outweighs-risk"),
        overridden(anti[2]["uuid"], "benefit-outweighs-risk"),
        overridden(anti[3]["uuid"], "tolerated-before"),
        overridden(anti[4]["uuid"], "short-course"),
        overridden(anti[5]["uuid"], "patient-declined"),
    ]
    send(client, items[:7])
    send(client, items[7:])
    send(client, items)  # repeats are stored once
    legacy_feedback(store_backend, str(uuid.uuid4()), "patient-declined", b.NOW)
    legacy_feedback(store_backend, str(uuid.uuid4()), None, b.NOW)


EXPECTED = {
    "since": None,
    "topics": [
        {
            "topic": IRON,
            "issued": 6,
            "accepted": 2,
            "overridden": 2,
            "override_rate": 0.5,
            "top_override_reasons": [
                {"code": "(no reason given)", "count": 1},
                {"code": "not-clinically-relevant", "count": 1},
            ],
        },
        {
            "topic": RENAL,
            "issued": 1,
            "accepted": 0,
            "overridden": 0,
            "override_rate": None,
            "top_override_reasons": [],
        },
        {
            "topic": ANTIHISTAMINE,
            "issued": 6,
            "accepted": 1,
            "overridden": 5,
            "override_rate": 0.8333,
            "top_override_reasons": [
                {"code": "benefit-outweighs-risk", "count": 2},
                {"code": "patient-declined", "count": 1},
                {"code": "short-course", "count": 1},
            ],
        },
    ],
    "unknown_card_feedback": 2,
}


def test_json_report(history, report):
    out = report("--format", "json")
    data = json.loads(out)
    assert data == EXPECTED
    assert list(data) == ["since", "topics", "unknown_card_feedback"]
    for topic in data["topics"]:
        assert list(topic) == TOPIC_KEYS
    codes = [t["topic"] for t in data["topics"]]
    assert codes == sorted(codes)
    assert report("--format", "json") == out  # nothing in it depends on when it was made


def test_override_rate_is_overridden_over_answered(history, report):
    for topic in json.loads(report("--format", "json"))["topics"]:
        answered = topic["accepted"] + topic["overridden"]
        if answered:
            assert topic["override_rate"] == round(topic["overridden"] / answered, 4)
        else:
            assert topic["override_rate"] is None


def test_table_report(history, report):
    out = report()
    assert out == report("--format", "table")
    lines = out.splitlines()
    assert lines[0].split() == [
        "topic",
        "issued",
        "accepted",
        "overridden",
        "override",
        "rate",
        "top",
        "override",
        "reasons",
    ]
    assert set(lines[1]) <= {"-", " "}
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert list(rows) == [IRON, RENAL, ANTIHISTAMINE]
    assert rows[IRON].split()[1:5] == ["6", "2", "2", "50%"]
    assert rows[ANTIHISTAMINE].split()[1:5] == ["6", "1", "5", "83%"]
    assert rows[ANTIHISTAMINE].endswith(
        "benefit-outweighs-risk (2); patient-declined (1); short-course (1)"
    )
    assert rows[RENAL].split()[1:] == ["1", "0", "0"]
    assert lines[-1] == "feedback on cards this service did not issue: 2"


def test_csv_report(history, report):
    rows = list(csv.reader(io.StringIO(report("--format", "csv"))))
    assert rows[0] == [*TOPIC_KEYS[:4], "override_rate", "top_override_reasons"]
    assert [row[0] for row in rows[1:4]] == [IRON, RENAL, ANTIHISTAMINE]
    assert rows[1][1:4] == ["6", "2", "2"]
    assert rows[3][5] == "benefit-outweighs-risk (2); patient-declined (1); short-course (1)"
    assert rows[2][4] == ""  # no answers: no rate
    assert rows[-1] == ["(unknown card)", "", "", "", "", "2 items"]
    assert len(rows) == 5


def test_empty_store(store_backend, make_app, report):
    make_app()
    assert json.loads(report("--format", "json")) == {
        "since": None,
        "topics": [],
        "unknown_card_feedback": 0,
    }
    assert "did not issue: 0" in report()


@pytest.fixture
def two_months(store_backend, app, client, clock) -> None:
    """A card pair issued and answered 30 days ago, another now; legacy unknown-card
    feedback then and now."""
    clock.now = b.NOW - timedelta(days=30)
    old = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body("r1")))
    flush(app)
    send(
        client,
        [
            accepted(old[IRON], when=clock.now),
            overridden(old[ANTIHISTAMINE]["uuid"], "benefit-outweighs-risk", when=clock.now),
        ],
    )
    legacy_feedback(store_backend, str(uuid.uuid4()), "short-course", clock.now)
    clock.now = b.NOW
    new = cards_by_topic(post_json(client, PATIENT_VIEW, patient_view_body("r2")))
    flush(app)
    send(
        client,
        [overridden(new[ANTIHISTAMINE]["uuid"], "short-course")],
    )
    legacy_feedback(store_backend, str(uuid.uuid4()), "short-course", clock.now)


def summary(data: dict) -> dict:
    return {
        t["topic"]: (t["issued"], t["accepted"], t["overridden"], t["top_override_reasons"])
        for t in data["topics"]
    } | {"unknown": data["unknown_card_feedback"]}


RECENT = {
    IRON: (1, 0, 0, []),
    ANTIHISTAMINE: (1, 0, 1, [{"code": "short-course", "count": 1}]),
    "unknown": 1,
}


def test_since_filters_cards_and_feedback(two_months, report):
    everything = json.loads(report("--format", "json"))
    assert summary(everything) == {
        IRON: (2, 1, 0, []),
        ANTIHISTAMINE: (
            2,
            0,
            2,
            [{"code": "benefit-outweighs-risk", "count": 1}, {"code": "short-course", "count": 1}],
        ),
        "unknown": 2,
    }
    recent = json.loads(report("--since", "2026-11-27T12:00:00Z", "--format", "json"))
    assert recent["since"] == "2026-11-27T12:00:00+00:00"
    assert summary(recent) == RECENT
    assert "since 2026-11-27T12:00:00+00:00: 1" in report("--since", "2026-11-27T12:00:00Z")


def test_since_a_date(two_months, report):
    data = json.loads(report("--since", "2026-11-01", "--format", "json"))
    assert data["since"] == "2026-11-01T00:00:00+00:00"
    assert summary(data) == RECENT


def test_since_with_a_utc_offset(two_months, report):
    """11:30Z written as 12:30+01:00: the cards and feedback of 12:00Z are after it."""
    data = json.loads(report("--since", "2026-11-28T12:30:00+01:00", "--format", "json"))
    assert summary(data) == RECENT


def test_since_after_everything(two_months, report):
    data = json.loads(report("--since", "2026-12-01", "--format", "json"))
    assert data["topics"] == [] and data["unknown_card_feedback"] == 0


def test_bad_since_and_format_are_usage_errors(store_backend, report, capsys):
    for args in (["--since", "last week"], ["--format", "xml"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["feedback-report", *args])
        assert exit_.value.code == 2
        assert "usage" in capsys.readouterr().err


def test_unreachable_database_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
    assert cli.main(["feedback-report"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rls-cds: the store could not be read")
    assert captured.err.count("\n") == 1
