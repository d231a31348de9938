"""Iron status in RLS: iron studies due, iron below the RLS treatment target, and what the
iron safety gate needs to know about the patient.

Thresholds and card text come from cards/iron-*.toml (AASM 2024 guideline, IRLSSG 2018, AGA
2020). This module decides which variant applies: the end-stage kidney disease targets
(ferritin < 200 ng/mL and TSAT < 20 %, IV iron sucrose) with ESRD or dialysis on the problem
list or a latest eGFR in kidney failure; the pregnancy target; the paediatric threshold
(ferritin < 50 ng/mL, oral iron by weight); the adult ones. Which iron is then offered is the
gate's decision (iron_gate.py, applied by the engine to every finding). For men and for women
past the menopause age, iron deficiency needs a cause, and the card suggests looking for one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from cds_service.clinical.facts import LabResult, MedicationFact
from cds_service.clinical.findings import CardNote, DataPoint, Finding, NoCard
from cds_service.clinical.iron_gate import IronFacts, describe_points, describe_uses
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules import pregnancy
from cds_service.clinical.rules.common import (
    Params,
    already_on_record,
    at_least,
    at_most,
    below,
    condition_point,
    data_point,
    dated,
    format_lab,
    lab_points,
    order_words,
    recent_words,
)
from cds_service.clinical.rules.kidney import failing_egfr

BELOW_TARGET = "iron-below-target"
FERRITIN = "ferritin"
TSAT = "transferrin-saturation"
WEIGHT = "body-weight"
ESRD = "esrd-dialysis"
OVERLOAD = "iron-overload"
POOR_ABSORPTION = ("poor-iron-absorption", "coeliac-disease")
COELIAC = "coeliac-disease"
ORAL = "iron-oral"
IV = "iron-iv"
ORDER_IRON = "order-iron-studies"
#: The work-up for the cause of iron deficiency: suggestion key -> orders that count as done.
CAUSE_WORKUP = {"gi-referral": "order-gi-evaluation", "coeliac-serology": "order-coeliac-serology"}


def studies_due(picture: PatientPicture, t: Params) -> list[Finding]:
    """`iron-studies-due`: no ferritin within the recency window, and none ordered."""
    window = t.window()
    recent = picture.latest(FERRITIN, window)
    if recent is not None:
        return NoCard("ferritin-recent", f"measured {recent_words(t)}: {dated(recent)}")
    order = picture.order_on_record(ORDER_IRON, window)
    if order is not None and order.state == "pending":
        return NoCard("already-ordered", f"already ordered: {order_words(order)}")
    # One card per action in pregnancy: the pregnancy card carries the ferritin order (with
    # its pregnancy target), so this card does not fire beside it (docs/card-topics.md).
    if pregnancy.is_pregnant(picture, t):
        return NoCard("pregnancy-card", "pregnant: the pregnancy card carries the ferritin")
    older = next(iter(picture.on_record(FERRITIN)), None)
    if older is None:
        return [Finding("iron-studies-due", "never", {})]
    return [
        Finding(
            "iron-studies-due",
            "outdated",
            {"last_ferritin": format_lab(older), "last_date": older.effective.date().isoformat()},
            data=(data_point(older),),
        )
    ]


def below_target(picture: PatientPicture, t: Params) -> list[Finding]:
    """`iron-below-target`: ferritin or TSAT below the RLS target for this patient (ESRD,
    pregnancy, child or adult targets), with the work-up for its cause where one is due."""
    window = t.window()
    ferritin = picture.latest(FERRITIN, window)
    tsat = picture.latest(TSAT, window)
    age = picture.age
    child = age is not None and age < t["child_age_below"]
    listed = picture.active_conditions(ESRD)
    egfr = failing_egfr(picture, t.of("kidney-disease"))
    if listed:
        extra = {"esrd_condition": listed[0].name}
        found = _below_target_esrd("esrd", ferritin, tsat, t, extra, (condition_point(listed[0]),))
    elif egfr is not None:
        extra = {"egfr": format_lab(egfr)}
        found = _below_target_esrd("esrd-egfr", ferritin, tsat, t, extra, tuple(lab_points(egfr)))
    elif pregnancy.is_pregnant(picture, t):
        found = _low(ferritin, tsat, t["pregnancy_ferritin_below"], t, "pregnancy")
    elif child:
        found = _low(ferritin, tsat, t["child_ferritin_below"], t, "child")
    else:
        found = _below_target_adult(ferritin, tsat, t)
    if isinstance(found, NoCard):
        return found
    found = _when_no_iron_fits(found, picture, t)
    if child:
        found = _with_dose_by_weight(found, picture, t)
    return [_with_cause(found, picture, ferritin, t)]


def _when_no_iron_fits(found: Finding, picture: PatientPicture, t: Params) -> Finding:
    """Iron overload, iron already on record, or a ferritin showing iron stores are not low
    changes what the card says (not only what the gate lets it offer): haematology first, the
    repeat ferritin after the course, or a look for inflammation."""
    facts = iron_facts(picture, t)
    if facts.overload:
        values = {**found.values, "overload": describe_points(facts.overload)}
        return replace(found, variant="overload", values=values)
    if not facts.on_record:
        ferritin = facts.ferritin
        if ferritin is not None and at_least(ferritin, t["ferritin_replete_from"]):
            return replace(found, variant="inflammation")
        return found
    values = {**found.values, "iron_on_record": describe_uses(facts.on_record)}
    order, ordered = already_on_record(picture, ORDER_IRON, t.window(), "Ferritin")
    if order is not None and order.state == "pending" and ordered:
        return replace(
            found, variant="on-iron", values=values, suggestions=(), notes=(*found.notes, ordered)
        )
    return replace(found, variant="on-iron", values=values)


def _below_target_adult(
    ferritin: LabResult | None, tsat: LabResult | None, t: Params
) -> Finding | NoCard:
    """Oral or IV iron at ferritin <= 75 or TSAT < 20 %; IV only at 75 < ferritin <= 100."""
    ferritin_low = ferritin is not None and at_most(ferritin, t["ferritin_iv_max"])
    tsat_low = tsat is not None and below(tsat, t["tsat_low"])
    if not (ferritin_low or tsat_low):
        return _at_target(ferritin, tsat, f"is above {t['ferritin_iv_max']:g}", t)
    if tsat_low or (ferritin is not None and at_most(ferritin, t["ferritin_oral_max"])):
        return _finding("oral-or-iv", ferritin, tsat)
    return _finding("iv-only", ferritin, tsat)


def _low(
    ferritin: LabResult | None,
    tsat: LabResult | None,
    ferritin_below: float,
    t: Params,
    variant: str,
) -> Finding | NoCard:
    """Pregnancy (IRLSSG consensus: ferritin < 75) and children (AASM: ferritin < 50): one
    threshold, no IV-only band."""
    ferritin_low = ferritin is not None and below(ferritin, ferritin_below)
    tsat_low = tsat is not None and below(tsat, t["tsat_low"])
    if ferritin_low or tsat_low:
        return _finding(variant, ferritin, tsat)
    return _at_target(ferritin, tsat, f"is not below the {variant} target {ferritin_below:g}", t)


def _below_target_esrd(
    variant: str,
    ferritin: LabResult | None,
    tsat: LabResult | None,
    t: Params,
    extra: dict[str, str],
    basis: tuple[DataPoint, ...],
) -> Finding | NoCard:
    """ESRD targets: ferritin < 200 ng/mL and TSAT < 20 %, both measured."""
    targets = f"kidney failure targets ferritin < {t['esrd_ferritin_below']:g} and TSAT < "
    targets += f"{t['tsat_low']:g} %"
    if ferritin is None or tsat is None:
        unmeasured = " and ".join(
            name for name, lab in (("ferritin", ferritin), ("TSAT", tsat)) if lab is None
        )
        return NoCard(
            "iron-not-measured", f"{targets} need both: no {unmeasured} {recent_words(t)}"
        )
    if not (below(ferritin, t["esrd_ferritin_below"]) and below(tsat, t["tsat_low"])):
        return NoCard("iron-at-target", f"{targets}: {dated(ferritin)}, {dated(tsat)}")
    found = _finding(variant, ferritin, tsat, **extra)
    return replace(found, data=(*basis, *found.data))


def _at_target(
    ferritin: LabResult | None, tsat: LabResult | None, ferritin_words: str, t: Params
) -> NoCard:
    """Why iron is not below target: each measured value against its limit, or nothing
    measured in the window."""
    if ferritin is None and tsat is None:
        return NoCard("iron-not-measured", f"no ferritin and no TSAT {recent_words(t)}")
    parts = [f"{dated(ferritin)} {ferritin_words}"] if ferritin else ["no ferritin"]
    parts.append(f"{dated(tsat)} is not below {t['tsat_low']:g}" if tsat else "no TSAT")
    return NoCard("iron-at-target", "; ".join(parts))


def _finding(
    variant: str, ferritin: LabResult | None, tsat: LabResult | None, **extra: str
) -> Finding:
    labs = [lab for lab in (ferritin, tsat) if lab is not None]
    values = {
        **extra,
        "ferritin": format_lab(ferritin) if ferritin else "not measured",
        "tsat": format_lab(tsat) if tsat else "not measured",
        "iron_summary": ", ".join(f"{_short(lab)} {format_lab(lab)}" for lab in labs),
    }
    data = tuple(point for lab in labs for point in lab_points(lab))
    return Finding(BELOW_TARGET, variant, values, data)


def _with_dose_by_weight(found: Finding, picture: PatientPicture, t: Params) -> Finding:
    """A child's oral iron dose: mg/kg/day of elemental iron from a recent weight, rounded
    to the milligram, capped at the most a child is given."""
    weight = picture.latest(WEIGHT, t.window("weight_days"))
    if weight is None:
        return found
    dose = min(math.floor(t["child_oral_mg_per_kg"] * weight.value + 0.5), t["child_oral_max_mg"])
    values = {
        **found.values,
        "child_dose_mg": f"{dose:g}",
        "child_weight": format_lab(weight),
        "child_weight_date": weight.effective.date().isoformat(),
    }
    return replace(found, values=values, data=(*found.data, data_point(weight)))


def _with_cause(
    found: Finding, picture: PatientPicture, ferritin: LabResult | None, t: Params
) -> Finding:
    """AGA 2020: in men and postmenopausal women, iron deficiency (ferritin < 45 ng/mL)
    needs a cause: GI evaluation and coeliac serology, unless done or ordered lately."""
    age = picture.age
    if ferritin is None or age is None or not below(ferritin, t["cause_ferritin_below"]):
        return found
    if found.variant == "pregnancy" or pregnancy.is_pregnant(picture, t):
        return found  # premenopausal whatever the age: the women's age stands in for that
    from_age = {"male": t["cause_men_from_age"], "female": t["cause_women_from_age"]}
    if picture.sex is None or age < from_age[picture.sex]:
        return found
    window = t.window()
    companions: list[str] = []
    notes = list(found.notes)
    for key, order_set in CAUSE_WORKUP.items():
        if key == "coeliac-serology" and picture.conditions_in(COELIAC):
            notes.append(
                "Coeliac disease is on the problem list: coeliac serology is not suggested."
            )
            continue
        what = "A GI evaluation" if key == "gi-referral" else "Coeliac serology"
        _, on_record = already_on_record(picture, order_set, window, what)
        if on_record:
            notes.append(on_record)
        else:
            companions.append(key)
    note = CardNote("iron-cause", {"ferritin": format_lab(ferritin)})
    return replace(
        found,
        card_notes=(*found.card_notes, note),
        notes=tuple(notes),
        companions=tuple(companions),
    )


def iron_facts(picture: PatientPicture, t: Params) -> IronFacts:
    """What the iron gate reads about the patient (`t`: the iron card's thresholds)."""
    now = picture.now
    recent_overload = now - t.window("overload_tsat_days")
    overload = [condition_point(c) for c in picture.conditions_in(OVERLOAD)]
    overload += [
        data_point(r)
        for r in picture.on_record(TSAT)
        if r.effective >= recent_overload and at_least(r, t["tsat_iv_cap"])
    ]
    found = pregnancy.current(picture, t)
    return IronFacts(
        ferritin=picture.latest(FERRITIN, t.window()),
        tsat=picture.latest(TSAT, t.window("iv_tsat_days")),
        overload=tuple(overload),
        on_record=tuple(_iron_on_record(picture, t.window("iron_given_days"))),
        age=picture.age,
        weight=picture.latest(WEIGHT, t.window("weight_days")),
        pregnant=found is not None,
        trimester=found.trimester if found else None,
        poor_absorption=tuple(c for s in POOR_ABSORPTION for c in picture.conditions_in(s)),
        medications_read="medications" not in picture.unavailable,
        history_read="medication-history" not in picture.unavailable,
    )


def _iron_on_record(picture: PatientPicture, within: timedelta) -> list[MedicationFact]:
    """Iron already taken or given: any active oral or IV iron, and IV iron ordered or given
    within `within` (an undated one counts: it cannot be shown to be old)."""
    earliest = picture.now - within
    active = [m for m in picture.medications if {ORAL, IV} & m.value_sets]
    lately = [
        m
        for m in picture.medication_history
        if IV in m.value_sets and (m.when is None or m.when >= earliest)
    ]
    return [*active, *lately]


def _short(lab: LabResult) -> str:
    return "ferritin" if lab.analyte == FERRITIN else "TSAT"
