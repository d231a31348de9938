"""Iron rules at and around every threshold, through the Engine and the rule functions directly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds_service.clinical.engine import Engine
from cds_service.clinical.facts import LabResult
from cds_service.clinical.rules import common, iron
from tests import builders as b
from tests.builders import ICD10CM, KNOWLEDGE

ENGINE = b.ENGINE
BELOW = b.params("iron-below-target")
DUE = b.params("iron-studies-due")
RECENT = "2026-10-15T08:00:00Z"
OLD = "2025-06-01T08:00:00Z"


def ferritin(value, comparator=None, when=RECENT) -> dict:
    return b.observation(b.FERRITIN, value, "ng/mL", when=when, comparator=comparator)


def tsat(value, comparator=None, when=RECENT) -> dict:
    return b.observation(b.TSAT, value, "%", when=when, comparator=comparator)


def engine_findings(topic: str, *resources: dict) -> list:
    return [f for f in ENGINE.patient_view(b.picture(b.rls(), *resources)) if f.topic == topic]


def below_target_via_engine(*resources: dict) -> list:
    return engine_findings("iron-below-target", *resources)


def below_target_via_rule(*resources: dict) -> list:
    return iron.below_target(b.picture(b.rls(), *resources), BELOW)


def studies_due_via_engine(*resources: dict) -> list:
    return engine_findings("iron-studies-due", *resources)


def studies_due_via_rule(*resources: dict) -> list:
    return iron.studies_due(b.picture(b.rls(), *resources), DUE)


@pytest.fixture(params=[below_target_via_engine, below_target_via_rule], ids=["engine", "rule"])
def below_target(request):
    return request.param


@pytest.fixture(params=[studies_due_via_engine, studies_due_via_rule], ids=["engine", "rule"])
def studies_due(request):
    return request.param


def variants(found: list) -> list[str]:
    return [f.variant for f in found]


class TestBelowTarget:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (74, ["oral-or-iv"]),
            (75, ["oral-or-iv"]),
            (75.1, ["iv-only"]),
            (76, ["iv-only"]),
            (100, ["iv-only"]),
            (100.1, []),
            (101, []),
        ],
    )
    def test_ferritin_thresholds_with_normal_tsat(self, below_target, value, expected):
        """Oral or IV at <= 75 ng/mL, IV only above 75 up to 100, no card above 100."""
        assert variants(below_target(ferritin(value), tsat(25))) == expected

    @pytest.mark.parametrize(("value", "expected"), [(19.9, ["oral-or-iv"]), (20, [])])
    def test_tsat_below_20_fires_even_with_ferritin_150(self, below_target, value, expected):
        assert variants(below_target(ferritin(150), tsat(value))) == expected

    @pytest.mark.parametrize(
        ("ferritin_value", "tsat_value"), [(50, 45), (50, 60), (90, 45), (90, 45.1)]
    )
    def test_tsat_at_or_above_45_is_iron_overload(self, below_target, ferritin_value, tsat_value):
        """Contract revision 2026-12-02: a TSAT of 45 % or more in the last 5 years is iron
        overload, so no iron at all (before: IV withheld, oral still offered)."""
        [finding] = below_target(ferritin(ferritin_value), tsat(tsat_value))
        assert finding.variant == "overload"
        assert "Transferrin (iron) saturation" in finding.values["overload"]

    def test_tsat_just_below_45_keeps_the_variant_suggestions(self, below_target):
        [finding] = below_target(ferritin(50), tsat(44.9))
        assert finding.variant == "oral-or-iv"
        assert finding.suggestions in (None, ("oral-iron", "iv-ferric-carboxymaltose"))
        assert (finding.notes, finding.card_notes) == ((), ())

    def test_missing_tsat_leaves_oral_iron_and_offers_the_iron_panel_for_iv(self):
        """Contract revision: without a TSAT the iron panel is offered in place of IV iron."""
        [finding] = below_target_via_engine(ferritin(50))
        assert finding.variant == "oral-or-iv"
        assert finding.values["tsat"] == "not measured"
        assert finding.suggestions == ("oral-iron", "iron-panel")
        assert [n.key for n in finding.card_notes] == ["iron-iv-no-tsat"]

    def test_old_tsat_counts_as_missing(self, below_target):
        [finding] = below_target(ferritin(50), tsat(10, when=OLD))
        assert finding.values["tsat"] == "not measured"

    def test_ferritin_below_5_is_low(self, below_target):
        [finding] = below_target(ferritin(5, comparator="<"), tsat(25))
        assert finding.variant == "oral-or-iv"
        assert finding.values["ferritin"] == "<5.0 ng/mL"

    def test_ferritin_above_100_is_not_at_most_100(self, below_target):
        """'>100' with value 100: the true value is above the IV limit."""
        assert below_target(ferritin(100, comparator=">"), tsat(25)) == []

    @pytest.mark.parametrize(("comparator", "expected"), [("<", ["oral-or-iv"]), (">", [])])
    def test_tsat_comparator_at_20(self, below_target, comparator, expected):
        assert variants(below_target(ferritin(150), tsat(20, comparator=comparator))) == expected

    def test_finding_data_carries_lab_values_dates_and_sources(self, below_target):
        f_obs, t_obs = ferritin(74), tsat(25, when="2026-09-01T08:00:00Z")
        [finding] = below_target(f_obs, t_obs)
        assert [(d.value, d.when, d.source) for d in finding.data] == [
            ("74 ng/mL", datetime(2026, 10, 15, 8, tzinfo=UTC), f"Observation/{f_obs['id']}"),
            ("25 %", datetime(2026, 9, 1, 8, tzinfo=UTC), f"Observation/{t_obs['id']}"),
        ]
        assert finding.values["iron_summary"] == "ferritin 74 ng/mL, TSAT 25 %"

    def test_computed_tsat_cites_the_iron_and_tibc_it_came_from(self, below_target):
        iron_obs = b.observation(b.IRON, 40, "ug/dL")
        tibc_obs = b.observation(b.TIBC, 400, "ug/dL")
        [finding] = below_target(ferritin(150), iron_obs, tibc_obs)
        assert finding.values["tsat"] == "10 %"
        sources = [d.source for d in finding.data]
        assert f"Observation/{iron_obs['id']}" in sources
        assert f"Observation/{tibc_obs['id']}" in sources


class TestComparators:
    def lab(self, value: float, comparator: str | None = None) -> LabResult:
        when = datetime(2026, 10, 15, tzinfo=UTC)
        return LabResult("ferritin", value, "ng/mL", when, "Ferritin", "x", comparator)

    @pytest.mark.parametrize(
        ("value", "comparator", "expected"),
        [(100, None, True), (100, "<", True), (100, "<=", True), (100, ">", False),
         (100, ">=", False), (100.1, None, False)],
    )  # fmt: skip
    def test_at_most(self, value, comparator, expected):
        assert common.at_most(self.lab(value, comparator), 100) is expected

    @pytest.mark.parametrize(
        ("value", "comparator", "expected"),
        [(19.9, None, True), (20, None, False), (20, "<", True), (20, "<=", False),
         (10, ">", False), (10, ">=", False)],
    )  # fmt: skip
    def test_below(self, value, comparator, expected):
        assert common.below(self.lab(value, comparator), 20) is expected


class TestStudiesDue:
    def test_never_when_no_ferritin(self, studies_due):
        assert variants(studies_due()) == ["never"]

    def test_outdated_when_only_ferritin_is_older_than_365_days(self, studies_due):
        obs = ferritin(30, when=OLD)
        [finding] = studies_due(obs)
        assert finding.variant == "outdated"
        assert finding.values == {"last_ferritin": "30 ng/mL", "last_date": "2025-06-01"}
        assert [(d.when, d.source) for d in finding.data] == [
            (datetime(2025, 6, 1, 8, tzinfo=UTC), f"Observation/{obs['id']}")
        ]

    def test_outdated_names_the_newest_old_ferritin(self, studies_due):
        [finding] = studies_due(ferritin(30, when="2024-01-01"), ferritin(45, when=OLD))
        assert finding.values["last_date"] == "2025-06-01"

    @pytest.mark.parametrize("extra", [(), (ferritin(30, when=OLD),)], ids=["alone", "with-old"])
    def test_no_card_when_a_recent_ferritin_exists(self, studies_due, extra):
        assert studies_due(ferritin(150), *extra) == []

    def test_tsat_alone_does_not_count_as_iron_studies(self, studies_due):
        assert variants(studies_due(tsat(25))) == ["never"]

    def test_future_dated_ferritin_is_not_called_over_12_months_old(self, studies_due):
        [finding] = studies_due(ferritin(45, when=OLD), ferritin(60, when="2027-03-01"))
        assert finding.values["last_date"] == "2025-06-01"


ESRD_CONDITIONS = [
    b.esrd(),
    b.condition(b.coding(ICD10CM, "Z99.2", "Dependence on renal dialysis")),
]


class TestEsrd:
    @pytest.fixture(params=ESRD_CONDITIONS, ids=["N18.6", "Z99.2"])
    def esrd(self, request):
        return request.param

    def test_ferritin_below_200_and_tsat_below_20_fires_esrd(self, below_target, esrd):
        [finding] = below_target(esrd, ferritin(199), tsat(19))
        assert finding.variant == "esrd"
        assert finding.values["esrd_condition"] in {
            "End stage renal disease",
            "Dependence on renal dialysis",
        }
        assert [d.label for d in finding.data][1:] == [
            "Ferritin in serum, plasma or blood",
            "Transferrin (iron) saturation",
        ]
        assert finding.data[0].source == f"Condition/{esrd['id']}"

    @pytest.mark.parametrize(
        "labs",
        [(ferritin(200), tsat(19)), (ferritin(199), tsat(20)), (ferritin(50),), (tsat(10),)],
        ids=["ferritin-200", "tsat-20", "tsat-missing", "ferritin-missing"],
    )
    def test_no_card_unless_both_below_esrd_targets(self, below_target, esrd, labs):
        assert below_target(esrd, *labs) == []

    def test_non_esrd_ferritin_target_does_not_apply(self, below_target, esrd):
        """Ferritin 90 with TSAT 25 is iv-only normally, but not low in ESRD."""
        assert below_target(esrd, ferritin(90), tsat(25)) == []

    def test_resolved_esrd_uses_the_usual_targets(self, below_target):
        resolved = b.condition(b.coding(ICD10CM, "N18.6", "ESRD"), clinical="resolved")
        assert variants(below_target(resolved, ferritin(90), tsat(25))) == ["iv-only"]


class TestEngine:
    def test_patient_without_rls_gets_no_findings_even_with_ferritin_10(self):
        assert ENGINE.patient_view(b.picture(ferritin(10), tsat(5))) == []

    def test_resolved_rls_gets_no_findings(self):
        picture = b.picture(b.rls(clinical="resolved"), ferritin(10))
        assert ENGINE.patient_view(picture) == []

    def test_both_iron_topics_can_fire_together(self):
        """No ferritin but TSAT 15: studies are due and iron is below target."""
        found = ENGINE.patient_view(b.picture(b.rls(), b.kidney_ok(), tsat(15)))
        assert [(f.topic, f.variant) for f in found] == [
            ("iron-studies-due", "never"),
            ("iron-below-target", "oral-or-iv"),
        ]

    @pytest.mark.parametrize("thresholds", [{}, {"iron-studies-due": DUE}])
    def test_rule_without_a_card_is_a_start_up_error(self, thresholds):
        with pytest.raises(ValueError, match="rules without cards"):
            Engine(thresholds, KNOWLEDGE.dosing, KNOWLEDGE.iron_catalogue)

    def test_card_without_a_rule_is_a_start_up_error(self):
        thresholds = KNOWLEDGE.thresholds | {"made-up": {}}
        with pytest.raises(ValueError, match="made-up"):
            Engine(thresholds, KNOWLEDGE.dosing, KNOWLEDGE.iron_catalogue)
