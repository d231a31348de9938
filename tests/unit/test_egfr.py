"""CKD-EPI 2021 (race-free) creatinine equation: a published point and the equation's properties."""

from __future__ import annotations

import pytest

from cds_service.clinical.egfr import ckd_epi_2021

KAPPA = {"female": 0.7, "male": 0.9}


def test_published_example_male_55_creatinine_1_2_is_71():
    """kidney.org CKD-EPI 2021 calculator: male, 55 years, Scr 1.2 mg/dL -> 71."""
    assert round(ckd_epi_2021(1.2, 55, "male")) == 71


@pytest.mark.parametrize("sex", ["female", "male"])
@pytest.mark.parametrize("age", [18, 40, 85])
def test_at_creatinine_equal_to_kappa_both_branches_agree(sex, age):
    """At Scr = kappa the equation is continuous: values just below and above meet."""
    kappa = KAPPA[sex]
    at = ckd_epi_2021(kappa, age, sex)
    assert ckd_epi_2021(kappa - 1e-9, age, sex) == pytest.approx(at, rel=1e-6)
    assert ckd_epi_2021(kappa + 1e-9, age, sex) == pytest.approx(at, rel=1e-6)


@pytest.mark.parametrize("age", [18, 40, 85])
def test_female_at_her_kappa_is_1_012_times_male_at_his(age):
    """Both sexes at Scr = kappa reduce to 142 x 0.9938^age; only the female factor differs."""
    female = ckd_epi_2021(0.7, age, "female")
    male = ckd_epi_2021(0.9, age, "male")
    assert female / male == pytest.approx(1.012)


def test_female_kappa_is_0_7_not_0_9():
    """Below her kappa (0.7) the female curve is flat-ish (alpha), above it steep (-1.2)."""
    below = ckd_epi_2021(0.6, 50, "female") / ckd_epi_2021(0.65, 50, "female")
    above = ckd_epi_2021(0.8, 50, "female") / ckd_epi_2021(0.85, 50, "female")
    assert below == pytest.approx((0.6 / 0.65) ** -0.241)
    assert above == pytest.approx((0.8 / 0.85) ** -1.2)


@pytest.mark.parametrize("creatinine", [0.3, 0.6, 0.7, 0.9, 1.2, 4.0])
def test_same_creatinine_means_lower_egfr_in_a_female(creatinine):
    """Women make less creatinine: kappa 0.7 outweighs the 1.012 factor at any Scr."""
    assert ckd_epi_2021(creatinine, 50, "female") < ckd_epi_2021(creatinine, 50, "male")


@pytest.mark.parametrize("sex", ["female", "male"])
def test_higher_creatinine_gives_lower_egfr(sex):
    creatinines = [0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.5, 5.0, 10.0]
    values = [ckd_epi_2021(scr, 60, sex) for scr in creatinines]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("sex", ["female", "male"])
@pytest.mark.parametrize("creatinine", [0.5, 1.0, 3.0])
def test_older_gives_lower_egfr(sex, creatinine):
    ages = [18, 30, 45, 60, 75, 90, 100]
    values = [ckd_epi_2021(creatinine, age, sex) for age in ages]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


def test_doubling_creatinine_above_kappa_divides_egfr_by_2_to_the_1_2():
    """Above kappa the creatinine exponent is -1.200 for both sexes."""
    ratio = ckd_epi_2021(2.0, 60, "male") / ckd_epi_2021(4.0, 60, "male")
    assert ratio == pytest.approx(2**1.2)


def test_egfr_is_in_a_plausible_range_for_normal_creatinine():
    assert 90 < ckd_epi_2021(0.8, 30, "female") < 130


@pytest.mark.parametrize("creatinine", [0, -0.1, -1.2])
def test_non_positive_creatinine_is_rejected(creatinine):
    with pytest.raises(ValueError):
        ckd_epi_2021(creatinine, 55, "male")


@pytest.mark.parametrize("age", [17.99, 17, 5, 0])
def test_minors_are_rejected(age):
    """CKD-EPI 2021 is validated for adults only."""
    with pytest.raises(ValueError):
        ckd_epi_2021(1.0, age, "female")


def test_age_18_is_accepted():
    assert ckd_epi_2021(1.0, 18, "female") > 0
