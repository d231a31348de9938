"""Kidney function in RLS: tests due, chronic kidney disease, and gabapentinoid renal doses.

CKD is a common secondary cause of RLS, changes the iron targets (ESRD) and the doses of the
drugs that treat RLS. eGFR stages follow KDIGO; gabapentinoid limits follow the drug labels
by creatinine clearance (cards/gabapentinoid-renal-dose.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cds_service.clinical.dosing import DoseBand, DrugDosing, daily_dose_mg, product_strength_mg
from cds_service.clinical.facts import ConditionFact, LabResult, MedicationFact
from cds_service.clinical.findings import CardNote, DataPoint, Evidence, Finding, NoCard, Target
from cds_service.clinical.kidney import UNKNOWN_PHRASE, KidneyFunction, kidney_function
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    below,
    condition_point,
    data_point,
    dated,
    format_lab,
    lab_points,
    medication_point,
    names,
    order_words,
    recent_words,
)
from cds_service.clinical.rules.pregnancy import is_pregnant

CREATININE = "creatinine"
EGFR = "egfr"
CKD = "ckd-stage-3-5"
CKD_4_5 = "ckd-stage-4-5"
ESRD = "esrd-dialysis"
DIALYSIS = "dialysis"
ORDER_KIDNEY = "order-kidney-function"
GABAPENTINOIDS = ("gabapentin-enacarbil", "gabapentin", "pregabalin")
"""Enacarbil first: "gabapentin enacarbil" also names gabapentin."""
FREQUENCY_WORDS = {
    0.5: "every other day",
    1: "once daily",
    2: "twice daily",
    3: "three times daily",
}


def renal_function_due(picture: PatientPicture, t: Params) -> list[Finding]:
    """`renal-function-due` (docs/card-topics.md, "Alert fatigue"): no creatinine or eGFR
    ever on record, or an active gabapentinoid with none in the recency window; none ordered,
    and never with ESRD or dialysis on the problem list (their kidney function is known to be
    failing and followed by the kidney team)."""
    window = t.window()
    failing = [*picture.active_conditions(ESRD), *picture.active_conditions(DIALYSIS)]
    if failing:
        return NoCard(
            "esrd-listed",
            f"{failing[0].name} is on the problem list: kidney function is followed there",
        )
    recent = picture.latest(CREATININE, window) or picture.latest(EGFR, window)
    if recent:
        return NoCard("result-recent", f"measured {recent_words(t)}: {dated(recent)}")
    order = picture.order_on_record(ORDER_KIDNEY, window)
    if order is not None and order.state == "pending":
        return NoCard("already-ordered", f"already ordered: {order_words(order)}")
    gabapentinoids = _gabapentinoids(picture)
    older = [r for r in (*picture.on_record(CREATININE), *picture.on_record(EGFR)) if r.reported]
    if older and not gabapentinoids:  # a result on record, none needed for a dose
        last = max(older, key=lambda r: r.effective)
        return NoCard(
            "no-gabapentinoid",
            f"{dated(last)} is on record and no active gabapentinoid needs a dose check",
        )
    notes: tuple[str, ...] = ()
    if gabapentinoids:
        notes = (
            f"The patient takes {names(gabapentinoids)}, whose dose depends on kidney function.",
        )
    if not older:
        return [Finding("renal-function-due", "never", {}, notes=notes)]
    last = max(older, key=lambda r: r.effective)
    return [
        Finding(
            "renal-function-due",
            "outdated",
            {
                "last_result": format_lab(last),
                "last_date": last.effective.date().isoformat(),
            },
            data=(data_point(last),),
            notes=notes,
        )
    ]


def kidney_disease(picture: PatientPicture, t: Params) -> list[Finding]:
    """`kidney-disease` (docs/card-topics.md, "Alert fatigue"): always at eGFR below
    `egfr_always_below`, CKD 4 to 5, ESRD or dialysis; at eGFR below `egfr_below` or CKD
    stage 3 on the list only beside an active gabapentinoid, as a renal-dosing card."""
    egfr = picture.latest(EGFR, t.window())
    dialysis = picture.active_conditions(DIALYSIS)
    listed = [c for c in picture.conditions if c.active and ({CKD, ESRD, DIALYSIS} & c.value_sets)]
    advanced = [c for c in listed if {CKD_4_5, ESRD, DIALYSIS} & c.value_sets]
    low = egfr is not None and below(egfr, t["egfr_below"])
    severe = egfr is not None and below(egfr, t["egfr_always_below"])
    if not (low or listed):
        seen = (
            f"latest eGFR {recent_words(t)} not below {t['egfr_below']:g} ({dated(egfr)})"
            if egfr
            else f"no eGFR {recent_words(t)}"
        )
        return NoCard("kidney-function-ok", f"{seen}; no kidney disease on the problem list")
    gabapentinoids = _gabapentinoids(picture)
    if not (severe or advanced or gabapentinoids):
        seen = dated(egfr) if low and egfr else names(listed)
        return NoCard(
            "moderate-no-gabapentinoid",
            f"{seen}: not below {t['egfr_always_below']:g} nor CKD 4-5, "
            "and no active gabapentinoid to dose",
        )
    data: list[DataPoint] = [condition_point(c) for c in listed]
    card_notes: list[CardNote] = []
    values = {"conditions": names(listed), "egfr": "not measured", "stage": ""}
    if egfr is not None:
        data += lab_points(egfr)
        values |= {"egfr": format_lab(egfr), "stage": kdigo_stage(egfr.value)}
        if low and not _persistent(picture, t):
            card_notes.append(CardNote("egfr-once"))
    if dialysis:
        variant = "dialysis"
    elif failing_egfr(picture, t) is not None:
        variant = "kidney-failure"
    elif any(ESRD in c.value_sets for c in listed):
        variant = "esrd-listed"
    elif severe or advanced:
        variant = "severe"
    else:
        variant = "renal-dosing"
        data += [medication_point(m) for m in gabapentinoids]
    values |= {
        "kidney": _kidney_words(egfr if low else None, advanced or listed),
        "medications": names(gabapentinoids),
    }
    return [Finding("kidney-disease", variant, values, tuple(data), card_notes=tuple(card_notes))]


def _kidney_words(egfr: LabResult | None, listed: list[ConditionFact]) -> str:
    """ "eGFR 22 mL/min/1.73 m2 (KDIGO G4)", or the problem-list entry when no low eGFR."""
    if egfr is not None:
        return f"eGFR {format_lab(egfr)} (KDIGO {kdigo_stage(egfr.value)})"
    return f"{names(listed)} on the problem list"


def failing_egfr(picture: PatientPicture, t: Mapping[str, float]) -> LabResult | None:
    """The latest recent eGFR when it is in kidney failure (KDIGO G5, below 15), else None.

    One meaning of kidney failure for every card: the iron card takes the ESRD iron targets
    from it (even without an ESRD or dialysis code), the kidney card its warning variant.
    `t` are the kidney card's thresholds.
    """
    egfr = picture.latest(EGFR, timedelta(days=t["recent_days"]))
    return egfr if egfr is not None and below(egfr, t["egfr_failure_below"]) else None


def kdigo_stage(egfr: float) -> str:
    """KDIGO GFR category of an eGFR in mL/min/1.73 m2."""
    for limit, stage in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= limit:
            return stage
    return "G5"


def _persistent(picture: PatientPicture, t: Params) -> bool:
    """Two reduced eGFRs at least 90 days apart, the later one recent."""
    reduced = [r for r in picture.on_record(EGFR) if below(r, t["egfr_below"])]
    if not reduced:
        return False
    newest = max(r.effective for r in reduced)
    return any(newest - r.effective >= t.window("chronic_days") for r in reduced)


def _gabapentinoids(picture: PatientPicture) -> list[MedicationFact]:
    return [m for m in picture.medications if set(GABAPENTINOIDS) & m.value_sets]


@dataclass(frozen=True)
class _Checked:
    """One gabapentinoid checked against its product's label."""

    medication: MedicationFact
    drug: DrugDosing
    band: DoseBand | None
    """The label row that applies; None without kidney function or on dialysis unrecommended."""
    dose: float | None
    limit: float | None
    clearance: float | None = None
    """The clearance the limit was read at (a proportional reduction scales with it)."""


class GabapentinoidDose:
    """`gabapentinoid-renal-dose`, bound to the label dose tables of the card definition.

    Each product has its own label (Neurontin, Gralise, Horizant, Lyrica, Lyrica CR): a
    medication is checked against the first product, in card-file order, whose value set it
    is in. A dose above the product's absolute maximum fires whatever the kidney function,
    including when it is not known.
    """

    def __init__(self, dosing: Mapping[str, DrugDosing]):
        self._products = tuple(dosing.values())
        missing = set(GABAPENTINOIDS) - {drug.value_set for drug in self._products}
        if missing:
            raise ValueError(f"no renal dose table for {sorted(missing)}")

    def check(self, picture: PatientPicture, t: Params) -> list[Finding]:
        kidney = kidney_function(picture, t.window())
        medications = _gabapentinoids(picture)
        if not medications:
            return NoCard(
                "no-gabapentinoid",
                f"no active gabapentinoid (medications read: {len(picture.medications)})",
            )
        above: list[_Checked] = []
        maximum: list[_Checked] = []
        unknown: list[_Checked] = []
        avoid: list[_Checked] = []
        for medication in medications:
            drug = self._drug(medication)
            dose = daily_dose_mg(medication.dosages, medication.name)
            if kidney is None:
                if dose is not None and dose > drug.max_daily_mg + 1e-6:
                    maximum.append(_Checked(medication, drug, None, dose, drug.max_daily_mg))
                continue
            clearance = kidney.band_clearance
            band = drug.dialysis if clearance is None else drug.band(clearance)
            if band is None or not band.recommended:
                avoid.append(_Checked(medication, drug, band, dose, None))
                continue
            limit = band.limit_mg(kidney.clearance)
            checked = _Checked(medication, drug, band, dose, limit, kidney.clearance)
            if dose is None:
                if band is not drug.bands[0]:
                    unknown.append(checked)
            elif dose > limit + 1e-6:
                above.append(checked)
        finding = self._finding(kidney, above, maximum, unknown, avoid)
        if not finding:
            phrase = kidney.phrase() if kidney is not None else UNKNOWN_PHRASE
            return NoCard(
                "dose-within-label", f"{names(medications)}: dose within the label {phrase}"
            )
        if is_pregnant(picture, t):
            # Gabapentinoids are not advised in pregnancy: no one-click order that keeps one
            # going, whatever the dose.
            return [
                replace(
                    finding[0],
                    targets=(),
                    notes=(
                        "Pregnancy: gabapentinoids are not advised; review it with the "
                        "obstetric team rather than only adjusting the dose.",
                    ),
                )
            ]
        return finding

    def _drug(self, medication: MedicationFact) -> DrugDosing:
        return next(d for d in self._products if d.value_set in medication.value_sets)

    def _finding(
        self,
        kidney: KidneyFunction | None,
        above: list[_Checked],
        maximum: list[_Checked],
        unknown: list[_Checked],
        avoid: list[_Checked],
    ) -> list[Finding]:
        if not (above or maximum or unknown or avoid):
            return []
        phrase = kidney.phrase() if kidney is not None else UNKNOWN_PHRASE
        data: list[DataPoint] = []
        lines: list[str] = []
        for c in above:
            data.append(medication_point(c.medication, f"{c.dose:g} mg/day"))
            lines.append(
                f"{c.medication.name}: {c.dose:g} mg/day, label limit {c.limit:g} mg/day {phrase}"
            )
        for c in maximum:
            data.append(medication_point(c.medication, f"{c.dose:g} mg/day"))
            lines.append(
                f"{c.medication.name}: {c.dose:g} mg/day, above the label maximum of "
                f"{c.limit:g} mg/day"
            )
        for c in unknown:
            data.append(medication_point(c.medication, "daily dose not readable"))
            lines.append(
                f"{c.medication.name}: daily dose not readable, label limit {c.limit:g} mg/day"
            )
        for c in avoid:
            data.append(medication_point(c.medication))
            row = c.band.label_note if c.band is not None else "not recommended on haemodialysis"
            lines.append(f"{c.medication.name}: {c.drug.description}, {row}")
        data += _kidney_points(kidney)
        if avoid:
            variant, first = "not-recommended", avoid[0]
        elif above or maximum:
            variant, first = ("above-limit", above[0]) if above else ("above-maximum", maximum[0])
        else:
            variant, first = "dose-unknown", unknown[0]
        changes = [(c, _updated(c.medication, c)) for c in (*above, *maximum)]
        adjusted = tuple(
            Target(c.medication.source, c.medication.name, change[0] if change else None)
            for c, change in changes
            if c.medication.is_request
        )
        doses = [(c, change[1]) for c, change in changes if change and c.medication.is_request]
        new_dose = (
            doses[0][1]
            if len(doses) == 1
            else "; ".join(f"{c.drug.name} {text}" for c, text in doses)
        )
        values = {
            "drug": first.drug.name,
            "product": first.drug.description,
            "dose": f"{first.dose:g}" if first.dose is not None else "",
            "limit": f"{first.limit:g}" if first.limit is not None else "",
            "kidney": phrase,
            "medications": "; ".join(lines),
            "instead": first.drug.instead,
            "new_dose": new_dose,
        }
        notes = tuple(
            f"{t.name}: no whole tablet of this strength fits the dose for this kidney "
            "function; choose a lower strength."
            for t in adjusted
            if t.update is None
        )
        # A drug the label does not recommend here can only be cancelled, not adjusted.
        targets = adjusted + tuple(
            Target(c.medication.source, c.medication.name) for c in avoid if c.medication.is_request
        )
        cited = list(dict.fromkeys(c.drug for c in (first, *avoid, *above, *maximum, *unknown)))
        return [
            Finding(
                "gabapentinoid-renal-dose",
                variant,
                values,
                tuple(data),
                notes=notes,
                targets=targets,
                evidence=tuple(Evidence(d.source_label, d.source_url) for d in cited),
            )
        ]


def _kidney_points(kidney: KidneyFunction | None) -> list[DataPoint]:
    if kidney is None:
        return [DataPoint("Kidney function for dosing", "not known (no recent result)", None, "")]
    if kidney.dialysis is not None:
        return [condition_point(kidney.dialysis)]
    when = kidney.labs[0].effective if kidney.labs else None
    points = [DataPoint("Kidney function for dosing", kidney.describe(), when, "computed")]
    if kidney.method == "Cockcroft-Gault":
        return points + [data_point(lab) for lab in kidney.labs]
    return [data_point(lab) for lab in kidney.labs]


def _updated(medication: MedicationFact, checked: _Checked) -> tuple[dict[str, Any], str] | None:
    """The order with its dosage replaced by a dose inside the limit (route kept), and that
    dose in words ("150 mg twice daily (300 mg/day)"); None when none can be offered.

    The dose is the row's suggested dose (reduced in proportion where the label says so),
    rounded down to whole tablets of the ordered product, so the update can be dispensed as
    written; ``meta`` is the EHR's and is dropped. A ``category`` sent as one object (the CDS
    Hooks Sandbox does) is put in the list FHIR R4 asks for, so the update stays valid.
    """
    band = checked.band or checked.drug.bands[0]
    if medication.raw is None:
        return None
    assert band.suggested_times_per_day is not None
    clearance = checked.clearance
    dose = band.suggested_mg(clearance)
    times = band.suggested_times_per_day
    limit = checked.limit or band.limit_mg(clearance)
    dose = min(dose, limit / times) if times >= 1 else dose
    strength = product_strength_mg(medication.name)
    if strength is not None:
        if strength > dose + 1e-9:  # no whole tablet of this product fits: the card says so
            return None
        dose = strength * (dose // strength)
    elif dose != int(dose):
        dose = float(int(dose))
    if dose <= 0:
        return None
    original = medication.raw.get("dosageInstruction")
    route = original[0].get("route") if isinstance(original, list) and original else None
    timing = (
        {"repeat": {"frequency": 1, "period": round(1 / times, 3), "periodUnit": "d"}}
        if times < 1
        else {"repeat": {"frequency": int(times), "period": 1, "periodUnit": "d"}}
    )
    how_often = FREQUENCY_WORDS.get(times, f"{times:g} times daily")
    words = f"{dose:g} mg {how_often} ({dose * times:g} mg/day)"
    dosage: dict[str, Any] = {
        "text": f"{dose:g} mg {how_often} ({band.label_note})",
        "timing": timing,
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose,
                    "unit": "mg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg",
                }
            }
        ],
    }
    if isinstance(route, dict):
        dosage["route"] = route
    updated = {key: value for key, value in medication.raw.items() if key != "meta"}
    if isinstance(updated.get("category"), dict):
        updated["category"] = [updated["category"]]
    return {**updated, "dosageInstruction": [dosage]}, words
