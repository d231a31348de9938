"""Every path through the iron safety gate, as records and what the iron card must do.

One table for two kinds of test: through the engine (tests/unit/test_iron_safety.py) and
over HTTP (tests/integration/test_iron_safety_http.py), so a path cannot be proven in one
and forgotten in the other. Evaluation time is builders.NOW (2026-11-28 12:00 UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests import builders as b
from tests.builders import ICD10CM, LOINC, RXNORM, SNOMED

o = b.observation
#: A woman of 40: an adult, and too young for the cause-of-iron-deficiency rule.
WOMAN_40 = {"gender": "female", "birth_date": "1986-03-01"}
ORAL = ("oral-iron",)
BOTH = ("oral-iron", "iv-ferric-carboxymaltose")
CAUSE = ("gi-referral", "coeliac-serology")


@dataclass(frozen=True)
class Case:
    resources: tuple[dict, ...]
    variant: str | None
    """The iron-below-target variant, or None when the card must not fire."""
    offered: tuple[str, ...] = ()
    """The suggestion keys offered, in order (iron and replacements)."""
    notes: frozenset[str] = frozenset()
    """The card notes (iron card `[notes]` keys) the card must carry."""
    companions: tuple[str, ...] = ()
    patient: dict[str, Any] = field(default_factory=lambda: dict(WOMAN_40))
    unavailable: frozenset[str] = frozenset()


def ferritin(value: float, when: str = "2026-10-15T08:00:00Z", **kw: Any) -> dict:
    return o(b.FERRITIN, value, "ng/mL", when=when, **kw)


def tsat(value: float, when: str = "2026-10-15T08:00:00Z") -> dict:
    return o(b.TSAT, value, "%", when=when)


def weight(kg: float, when: str = "2026-11-01T08:00:00Z") -> dict:
    return o(b.WEIGHT, kg, "kg", when=when)


def icd(code: str, display: str | None = None, **kw: Any) -> dict:
    return b.condition(b.coding(ICD10CM, code, display), **kw)


def sct(code: str, display: str | None = None, **kw: Any) -> dict:
    return b.condition(b.coding(SNOMED, code, display), **kw)


def named(text: str, **kw: Any) -> dict:
    return b.condition(text=text, **kw)


def med(text: str, status: str = "active", code: str | None = None, authored: str | None = None):
    request = b.medication_request(code=code, text=text, status=status)
    if authored:
        request["authoredOn"] = authored
    return request


def statement(text: str, status: str = "active", effective: str | None = None) -> dict:
    resource = b.medication_statement(text=text, status=status)
    if effective:
        resource["effectiveDateTime"] = effective
    return resource


def given(text: str, when: str | None, status: str = "completed") -> dict:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": b._id(),
        "status": status,
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
    }
    if when:
        resource["effectiveDateTime"] = when
    return resource


def order(system: str, code: str, status: str = "active", **kw: Any) -> dict:
    return b.service_request(code, system=system, status=status, **kw)


def procedure(code: str, when: str, system: str = SNOMED) -> dict:
    return {
        "resourceType": "Procedure",
        "id": b._id(),
        "status": "completed",
        "code": {"coding": [b.coding(system, code)]},
        "subject": {"reference": f"Patient/{b.PATIENT_ID}"},
        "performedDateTime": when,
    }


def man(born: str) -> dict[str, Any]:
    return {"gender": "male", "birth_date": born}


def woman(born: str) -> dict[str, Any]:
    return {"gender": "female", "birth_date": born}


LOW = (ferritin(30), tsat(15))
ESRD = icd("N18.6", "End stage renal disease")
ESRD_LOW = (ESRD, ferritin(150), tsat(10))
CHILD = {"gender": "male", "birth_date": "2017-05-01"}  # 9 years old
N = frozenset

CASES: dict[str, Case] = {
    # --- the adult baseline -----------------------------------------------------------
    "adult-oral-or-iv": Case(LOW, "oral-or-iv", BOTH),
    "adult-iv-only": Case((ferritin(90), tsat(25)), "iv-only", ("iv-ferric-carboxymaltose",)),
    # --- iron overload: no iron at all ------------------------------------------------
    "overload-E83.110": Case((*LOW, icd("E83.110", "Hereditary hemochromatosis")), "overload"),
    "overload-E83.111-transfusional": Case((*LOW, icd("E83.111")), "overload"),
    "overload-E83.118": Case((*LOW, icd("E83.118")), "overload"),
    "overload-E83.119": Case((*LOW, icd("E83119")), "overload"),
    "overload-snomed": Case((*LOW, sct("399187006", "Hemochromatosis")), "overload"),
    "overload-text-haemochromatosis": Case(
        (*LOW, named("Haemochromatosis (HFE C282Y)")), "overload"
    ),
    "overload-text-transfusional": Case((*LOW, named("Transfusional iron overload")), "overload"),
    "overload-resolved-entry-still-counts": Case(
        (*LOW, icd("E83.110", clinical="resolved")), "overload"
    ),
    "overload-on-a-child": Case((ferritin(30), icd("E83.110")), "overload", patient=CHILD),
    "overload-in-esrd": Case((*ESRD_LOW, icd("E83.110")), "overload"),
    "not-overload-E83.10": Case((*LOW, icd("E83.10")), "oral-or-iv", BOTH),
    "not-overload-refuted": Case(
        (*LOW, icd("E83.110", verification="refuted")), "oral-or-iv", BOTH
    ),
    "overload-tsat-45-in-5-years": Case((*LOW, tsat(45, when="2023-01-10")), "overload"),
    "overload-tsat-60-latest": Case((ferritin(50), tsat(60)), "overload"),
    "tsat-44.9-is-not-overload": Case((*LOW, tsat(44.9, when="2023-01-10")), "oral-or-iv", BOTH),
    "tsat-45-over-5-years-ago-is-not-overload": Case(
        (*LOW, tsat(50, when="2021-11-20")), "oral-or-iv", BOTH
    ),
    # --- IV iron needs a TSAT < 45 % from 12 months and ferritin < 300 -------------------
    "no-tsat-iron-panel-in-place-of-iv": Case(
        (ferritin(30),), "oral-or-iv", ("oral-iron", "iron-panel"), N({"iron-iv-no-tsat"})
    ),
    "iv-only-no-tsat": Case((ferritin(90),), "iv-only", ("iron-panel",), N({"iron-iv-no-tsat"})),
    "tsat-older-than-12-months": Case(
        (ferritin(90), tsat(25, when="2025-11-27T08:00:00Z")),
        "iv-only",
        ("iron-panel",),
        N({"iron-iv-no-tsat"}),
    ),
    "tsat-44.9-allows-iv": Case(
        (ferritin(90), tsat(44.9)), "iv-only", ("iv-ferric-carboxymaltose",)
    ),
    "tsat-only-no-ferritin-no-iron": Case((tsat(15),), "oral-or-iv", (), N({"iron-no-ferritin"})),
    "ferritin-299-allows-iron": Case((ferritin(299), tsat(15)), "oral-or-iv", BOTH),
    "ferritin-300-no-iron": Case((ferritin(300), tsat(15)), "inflammation"),
    "ferritin-620-no-iron": Case((ferritin(620), tsat(12)), "inflammation"),
    "ferritin-above-300-comparator": Case(
        (ferritin(300, comparator=">"), tsat(12)), "inflammation"
    ),
    # --- iron already taken or given: the repeat ferritin only -------------------------
    "oral-iron-order-by-code": Case(
        (*LOW, med("ferrous sulfate 325 MG Oral Tablet", code="310325")),
        "on-iron",
        ("repeat-ferritin",),
    ),
    "oral-iron-by-name-only": Case(
        (*LOW, med("Ferrous gluconate 324 mg")), "on-iron", ("repeat-ferritin",)
    ),
    "oral-iron-reported": Case(
        (*LOW, statement("Polysaccharide iron complex 150 mg")), "on-iron", ("repeat-ferritin",)
    ),
    "oral-iron-stopped-is-not-on-record": Case(
        (*LOW, med("Ferrous sulfate 325 mg", status="stopped")), "oral-or-iv", BOTH
    ),
    "iv-iron-order-active": Case(
        (*LOW, med("Ferric carboxymaltose 750 mg IV")), "on-iron", ("repeat-ferritin",)
    ),
    "iv-iron-completed-83-days-ago": Case(
        (*LOW, med("Iron sucrose 200 mg IV", status="completed", authored="2026-09-06")),
        "on-iron",
        ("repeat-ferritin",),
    ),
    "iv-iron-completed-85-days-ago": Case(
        (*LOW, med("Iron sucrose 200 mg IV", status="completed", authored="2026-09-04")),
        "oral-or-iv",
        BOTH,
    ),
    "iv-iron-given-10-days-ago": Case(
        (*LOW, given("Feraheme (ferumoxytol) 510 mg", "2026-11-18T10:00:00Z")),
        "on-iron",
        ("repeat-ferritin",),
    ),
    "iv-iron-given-undated": Case(
        (*LOW, given("Iron dextran", None)), "on-iron", ("repeat-ferritin",)
    ),
    "iv-iron-given-not-done-does-not-count": Case(
        (*LOW, given("Iron dextran", "2026-11-18", status="not-done")), "oral-or-iv", BOTH
    ),
    "iv-iron-reported-completed": Case(
        (
            *LOW,
            statement("Monoferric 1000 mg infusion", status="completed", effective="2026-10-01"),
        ),
        "on-iron",
        ("repeat-ferritin",),
    ),
    "iv-iron-by-rxnorm-code": Case(
        (*LOW, med("", code="1741261")), "on-iron", ("repeat-ferritin",)
    ),
    "on-iron-repeat-ferritin-already-ordered": Case(
        (*LOW, med("Ferrous sulfate 325 mg"), order(LOINC, b.FERRITIN)), "on-iron", ()
    ),
    # --- children: ferritin < 50, oral iron by weight only, no IV ----------------------
    "child-ferritin-49": Case(
        (ferritin(49), tsat(25), weight(28)), "child", ("oral-iron-by-weight",), patient=CHILD
    ),
    "child-ferritin-50-no-card": Case((ferritin(50), tsat(25), weight(28)), None, patient=CHILD),
    "child-ferritin-70-tsat-19": Case(
        (ferritin(70), tsat(19), weight(28)), "child", ("oral-iron-by-weight",), patient=CHILD
    ),
    "child-17-years": Case(
        (ferritin(40), weight(60)), "child", ("oral-iron-by-weight",), patient=man("2009-06-01")
    ),
    "adult-at-18-years": Case(
        (ferritin(60), tsat(25)), "oral-or-iv", BOTH, patient=woman("2008-11-01")
    ),
    "child-no-weight": Case((ferritin(20),), "child", (), N({"iron-weight-needed"}), patient=CHILD),
    "child-weight-older-than-3-months": Case(
        (ferritin(20), weight(28, when="2026-08-30T08:00:00Z")),
        "child",
        (),
        N({"iron-weight-needed"}),
        patient=CHILD,
    ),
    "child-weight-within-3-months": Case(
        (ferritin(20), weight(28, when="2026-08-31T08:00:00Z")),
        "child",
        ("oral-iron-by-weight",),
        patient=CHILD,
    ),
    "child-on-dialysis-no-iv": Case(
        (*ESRD_LOW, weight(30)), "esrd", (), N({"iron-iv-child"}), patient=CHILD
    ),
    "child-pregnant-dose-by-weight": Case(
        (icd("Z33.1"), ferritin(40), weight(55)),
        "pregnancy",
        ("oral-iron-by-weight",),
        N({"iron-child-fixed-dose"}),
        patient=woman("2010-02-01"),
    ),
    "age-unknown-no-iv": Case(
        ESRD_LOW,
        "esrd",
        (),
        N({"iron-iv-age-unknown"}),
        patient={"gender": "female", "birth_date": ""},
    ),
    # --- pregnancy: IV only in the 2nd or 3rd trimester (the ESRD path offers IV) -------
    "pregnant-oral-only": Case((icd("Z33.1"), ferritin(40)), "pregnancy", ORAL),
    "pregnant-esrd-trimester-unknown": Case(
        (*ESRD_LOW, icd("Z33.1")), "esrd", (), N({"iron-iv-pregnancy"})
    ),
    "pregnant-esrd-first-trimester-code": Case(
        (*ESRD_LOW, icd("O09.511", onset="2026-11-01")), "esrd", (), N({"iron-iv-pregnancy"})
    ),
    "pregnant-esrd-second-trimester-code": Case(
        (*ESRD_LOW, icd("O09.512", onset="2026-11-01")), "esrd", ("iv-iron-sucrose",)
    ),
    "pregnant-esrd-first-trimester-code-21-weeks-ago": Case(
        (*ESRD_LOW, icd("O09.511", onset="2026-06-27")), "esrd", ("iv-iron-sucrose",)
    ),
    "pregnant-esrd-z3a-13-weeks": Case(
        (*ESRD_LOW, icd("Z3A.13", onset="2026-11-28")), "esrd", (), N({"iron-iv-pregnancy"})
    ),
    "pregnant-esrd-z3a-14-weeks": Case(
        (*ESRD_LOW, icd("Z3A.14", onset="2026-11-28")), "esrd", ("iv-iron-sucrose",)
    ),
    "pregnant-esrd-gestational-age-20-weeks": Case(
        (*ESRD_LOW, o("11884-4", 20, "wk", when="2026-11-21T08:00:00Z")),
        "esrd",
        ("iv-iron-sucrose",),
    ),
    "pregnant-esrd-gestational-age-70-days": Case(
        (*ESRD_LOW, o("49051-6", 70, "d", when="2026-11-27T08:00:00Z")),
        "esrd",
        (),
        N({"iron-iv-pregnancy"}),
    ),
    "pregnant-esrd-detected-test-only": Case(
        (
            *ESRD_LOW,
            b.observation("2106-3", None, None)
            | {"valueCodeableConcept": {"coding": [b.coding(SNOMED, "260373001", "Detected")]}},
        ),
        "esrd",
        (),
        N({"iron-iv-pregnancy"}),
    ),
    # --- the cause of iron deficiency ----------------------------------------------------
    "cause-man-18": Case(
        LOW,
        "oral-or-iv",
        BOTH,
        companions=CAUSE,
        notes=N({"iron-cause"}),
        patient=man("2008-11-01"),
    ),
    "cause-man-67-ferritin-9": Case(
        (ferritin(9), tsat(8)), "oral-or-iv", BOTH, N({"iron-cause"}), CAUSE, man("1959-03-01")
    ),
    "cause-man-ferritin-45-no": Case(
        (ferritin(45), tsat(15)), "oral-or-iv", BOTH, patient=man("1959-03-01")
    ),
    "cause-man-ferritin-44.9": Case(
        (ferritin(44.9), tsat(25)), "oral-or-iv", BOTH, N({"iron-cause"}), CAUSE, man("1959-03-01")
    ),
    "cause-woman-50": Case(LOW, "oral-or-iv", BOTH, N({"iron-cause"}), CAUSE, woman("1976-11-01")),
    "cause-woman-49-no": Case(LOW, "oral-or-iv", BOTH, patient=woman("1976-12-01")),
    "cause-not-in-pregnancy": Case(
        (icd("Z33.1"), ferritin(20)), "pregnancy", ORAL, patient=woman("1975-01-01")
    ),
    "cause-gi-referral-pending": Case(
        (*LOW, order(SNOMED, "183523005", authored="2026-10-01")),
        "oral-or-iv",
        BOTH,
        N({"iron-cause"}),
        ("coeliac-serology",),
        man("1959-03-01"),
    ),
    "cause-colonoscopy-done-this-year": Case(
        (*LOW, procedure("73761001", "2026-03-01")),
        "oral-or-iv",
        BOTH,
        N({"iron-cause"}),
        ("coeliac-serology",),
        man("1959-03-01"),
    ),
    "cause-colonoscopy-over-a-year-ago": Case(
        (*LOW, procedure("73761001", "2025-10-01")),
        "oral-or-iv",
        BOTH,
        N({"iron-cause"}),
        CAUSE,
        man("1959-03-01"),
    ),
    "cause-ttg-result-on-record": Case(
        (*LOW, o("31017-7", 2, "U/mL", when="2026-06-01")),
        "oral-or-iv",
        BOTH,
        N({"iron-cause"}),
        ("gi-referral",),
        man("1959-03-01"),
    ),
    "cause-coeliac-known": Case(
        (*LOW, icd("K90.0", "Celiac disease")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-cause", "iron-poor-absorption"}),
        ("gi-referral",),
        man("1959-03-01"),
    ),
    # --- poor oral absorption: IV preferred (within the gate) ---------------------------
    "bariatric-Z98.84": Case(
        (*LOW, icd("Z98.84", "Bariatric surgery status")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "crohn-K50.90": Case(
        (*LOW, icd("K50.90")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "ulcerative-colitis-K51.90": Case(
        (*LOW, icd("K51.90")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "ibd-snomed": Case(
        (*LOW, sct("24526004")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "coeliac-snomed": Case(
        (*LOW, sct("396331005")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "gastric-bypass-text": Case(
        (*LOW, named("History of Roux-en-Y gastric bypass")),
        "oral-or-iv",
        ("iv-ferric-carboxymaltose",),
        N({"iron-poor-absorption"}),
    ),
    "non-celiac-gluten-sensitivity-is-not-coeliac": Case(
        (*LOW, named("Non-celiac gluten sensitivity")), "oral-or-iv", BOTH
    ),
    "bariatric-without-tsat-panel-only": Case(
        (ferritin(30), icd("Z98.84")),
        "oral-or-iv",
        ("iron-panel",),
        N({"iron-poor-absorption", "iron-iv-no-tsat"}),
    ),
    "bariatric-pregnant-no-one-click-iron": Case(
        (ferritin(30), icd("Z98.84"), icd("Z33.1")), "pregnancy", (), N({"iron-poor-absorption"})
    ),
    # --- kidney failure by eGFR: the ESRD targets -------------------------------------
    "egfr-14.9-esrd-targets": Case(
        (o(b.EGFR, 14.9, "mL/min/{1.73_m2}"), ferritin(150), tsat(15)),
        "esrd-egfr",
        ("iv-iron-sucrose-kidney-failure",),
    ),
    "egfr-15-adult-targets": Case(
        (o(b.EGFR, 15, "mL/min/{1.73_m2}"), ferritin(150), tsat(15)), "oral-or-iv", BOTH
    ),
    "egfr-14-ferritin-250-not-low-in-esrd": Case(
        (o(b.EGFR, 14, "mL/min/{1.73_m2}"), ferritin(250), tsat(15)), None
    ),
    "egfr-computed-from-creatinine": Case(
        (o(b.CREATININE, 5.0, "mg/dL"), ferritin(150), tsat(15)),
        "esrd-egfr",
        ("iv-iron-sucrose-kidney-failure",),
    ),
    # --- data that could not be read ------------------------------------------------
    "medications-unread-no-iron": Case(
        LOW, "oral-or-iv", (), N({"iron-medications-unread"}), unavailable=N({"medications"})
    ),
    "medication-history-unread-no-iv": Case(
        LOW,
        "oral-or-iv",
        ORAL,
        N({"iron-iv-history-unread"}),
        unavailable=N({"medication-history"}),
    ),
}

#: MedicationRequest suggestions by key (what the HTTP tests look for in a card).
IRON_KEYS = (
    "oral-iron",
    "oral-iron-by-weight",
    "iv-ferric-carboxymaltose",
    "iv-iron-sucrose",
    "iv-iron-sucrose-kidney-failure",
)
RXNORM_SYSTEM = RXNORM
