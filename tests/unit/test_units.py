"""Lab unit conversion: one canonical unit per analyte, unknown units refused, never guessed."""

from __future__ import annotations

import pytest

from cds_service.clinical.units import canonical_unit, to_canonical
from tests.builders import KNOWLEDGE


class TestFerritin:
    @pytest.mark.parametrize("unit", ["ng/mL", "ug/L", "µg/L", "μg/L", "mcg/L"])
    def test_mass_units_are_ng_per_ml(self, unit):
        """ng/mL = ug/L, whatever the spelling of micro."""
        assert to_canonical("ferritin", 38, unit) == pytest.approx(38)

    def test_pmol_per_litre_divides_by_2_247(self):
        assert to_canonical("ferritin", 224.7, "pmol/L") == pytest.approx(100)

    def test_canonical_unit_is_ng_per_ml(self):
        assert canonical_unit("ferritin") == "ng/mL"


class TestCreatinine:
    @pytest.mark.parametrize(
        ("value", "unit", "mg_dl"),
        [
            (1.2, "mg/dL", 1.2),
            (88.4, "umol/L", 1.0),
            (106.08, "µmol/L", 1.2),
            (88.4, "μmol/L", 1.0),
            (0.0884, "mmol/L", 1.0),
        ],
    )
    def test_converted_to_mg_per_dl(self, value, unit, mg_dl):
        """umol/L / 88.4; mmol/L is 1000 umol/L."""
        assert to_canonical("creatinine", value, unit) == pytest.approx(mg_dl)

    def test_canonical_unit_is_mg_per_dl(self):
        assert canonical_unit("creatinine") == "mg/dL"


class TestTransferrinSaturation:
    @pytest.mark.parametrize("unit", ["%", "percent"])
    def test_percent_is_kept(self, unit):
        assert to_canonical("transferrin-saturation", 18, unit) == 18

    def test_a_fraction_is_not_guessed_to_be_percent(self):
        assert to_canonical("transferrin-saturation", 0.18, "1") is None


class TestIron:
    @pytest.mark.parametrize("analyte", ["serum-iron", "tibc"])
    def test_umol_per_litre_converted_to_ug_per_dl(self, analyte):
        """1 ug/dL = 0.1791 umol/L."""
        assert to_canonical(analyte, 17.91, "umol/L") == pytest.approx(100)


class TestEgfr:
    @pytest.mark.parametrize(
        "unit",
        [
            "mL/min/{1.73_m2}",
            "mL/min/1.73m2",
            "mL/min/1.73_m2",
            "mL/min/1.73 m2",
            "mL/min/{1.73m2}",
            "mL/min/1.73m^2",
        ],
    )
    def test_every_spelling_of_per_1_73_m2_is_accepted(self, unit):
        assert to_canonical("egfr", 55, unit) == 55

    def test_ml_per_min_on_an_egfr_code_is_read_per_1_73_m2(self):
        """Every eGFR code we accept is per 1.73 m2 by definition; "mL/min" on one (Synthea) is
        a label missing its area. A measured creatinine clearance has its own LOINC code, which
        is in no eGFR value set, so it can never be read as eGFR this way."""
        assert to_canonical("egfr", 55, "mL/min") == 55
        assert not KNOWLEDGE.value_sets["egfr"].has_code("http://loinc.org", "2164-2")

    def test_other_units_are_still_refused(self):
        assert to_canonical("egfr", 55, "mL/s") is None


class TestCaseFolding:
    @pytest.mark.parametrize(
        ("analyte", "unit", "expected"),
        [
            ("ferritin", "NG/ML", 10),
            ("ferritin", "ng/ml", 10),
            ("ferritin", "  Ug/l  ", 10),
            ("creatinine", "MG/DL", 10),
            ("creatinine", "UMOL/L", 10 / 88.4),
            ("transferrin-saturation", "PERCENT", 10),
            ("egfr", "ML/MIN/1.73M2", 10),
        ],
    )
    def test_case_and_surrounding_space_do_not_matter(self, analyte, unit, expected):
        assert to_canonical(analyte, 10, unit) == pytest.approx(expected)


class TestUnknownIsRefused:
    @pytest.mark.parametrize(
        ("analyte", "unit"),
        [
            ("ferritin", "mg/L"),
            ("ferritin", "%"),
            ("ferritin", ""),
            ("creatinine", "g/dL"),
            ("creatinine", "mg/L"),
            ("serum-iron", "mg/dL"),
            ("transferrin-saturation", "ug/dL"),
            ("egfr", "mL/s"),
        ],
    )
    def test_unknown_unit_returns_none(self, analyte, unit):
        assert to_canonical(analyte, 10, unit) is None

    @pytest.mark.parametrize("analyte", ["ferritin", "creatinine", "egfr"])
    def test_missing_unit_returns_none(self, analyte):
        assert to_canonical(analyte, 10, None) is None

    def test_unknown_analyte_returns_none(self):
        assert to_canonical("hemoglobin", 13, "g/dL") is None
