"""What the rules share: comparing lab values safely, and showing the data a card used."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from cds_service.clinical.facts import ConditionFact, LabResult, MedicationFact, OrderFact
from cds_service.clinical.findings import DataPoint
from cds_service.clinical.indications import IndicationDef
from cds_service.clinical.picture import PatientPicture

#: "Recent" in docs/card-topics.md: within the last 12 months of the evaluation time.
RECENT = "recent_days"


class Params(Mapping[str, float]):
    """A rule's own thresholds (read like a mapping), plus other cards' thresholds, the
    renal dose tables and the indications, for rules that depend on more of the knowledge
    than numbers (pregnancy, doses, what a drug is given for)."""

    def __init__(
        self,
        own: Mapping[str, float],
        every: Mapping[str, Mapping[str, float]],
        dosing: Mapping[str, object] | None = None,
        indications: Mapping[str, IndicationDef] | None = None,
    ):
        self._own = own
        self._every = every
        self.dosing = dosing or {}
        self.indications: Mapping[str, IndicationDef] = indications or {}

    def __getitem__(self, key: str) -> float:
        return self._own[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._own)

    def __len__(self) -> int:
        return len(self._own)

    def of(self, topic: str) -> Mapping[str, float]:
        """Another topic's thresholds."""
        return self._every[topic]

    def window(self, key: str = RECENT) -> timedelta:
        return timedelta(days=self[key])


def at_most(lab: LabResult, limit: float) -> bool:
    """The value is certainly <= limit (a '>' result is not)."""
    return lab.value <= limit and lab.comparator not in (">", ">=")


def at_least(lab: LabResult, limit: float) -> bool:
    """The value is certainly >= limit (a '<' or '<=' result is not)."""
    return lab.value >= limit and lab.comparator not in ("<", "<=")


def below(lab: LabResult, limit: float) -> bool:
    """The value is certainly < limit ('<= limit' counts only with a '<' comparator)."""
    if lab.comparator in (">", ">="):
        return False
    return lab.value < limit or (lab.comparator == "<" and lab.value <= limit)


def format_lab(lab: LabResult) -> str:
    """`38 ng/mL`, `14 %`, `<5 ng/mL`: whole numbers above 10, one decimal below."""
    number = f"{lab.value:.0f}" if abs(lab.value) >= 10 else f"{lab.value:.1f}"
    return f"{lab.comparator or ''}{number} {lab.unit}"


def data_point(lab: LabResult) -> DataPoint:
    return DataPoint(lab.name, format_lab(lab), lab.effective, lab.source)


def lab_points(lab: LabResult) -> list[DataPoint]:
    """The lab and, for a computed value, what it was computed from."""
    return [data_point(lab), *(data_point(part) for part in lab.derived_from)]


def condition_point(condition: ConditionFact) -> DataPoint:
    status = condition.clinical_status or "status not recorded"
    return DataPoint(
        "Problem list", f"{condition.name} ({status})", condition.since, condition.source
    )


def medication_point(medication: MedicationFact, detail: str | None = None) -> DataPoint:
    kind = "Medication order" if medication.is_request else "Medication reported"
    value = f"{medication.name} ({medication.status})"
    if detail:
        value += f", {detail}"
    return DataPoint(kind, value, medication.when, medication.source)


def order_point(order: OrderFact) -> DataPoint:
    label = "Ordered" if order.state == "pending" else "Done"
    return DataPoint(label, order.name, order.when, order.source)


def names(items: Iterable[ConditionFact | MedicationFact]) -> str:
    """Distinct names in order, joined for a sentence: "a", "a and b", "a, b and c"."""
    unique = list(dict.fromkeys(item.name for item in items))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " and " + unique[-1]


def pending(picture: PatientPicture, order_set: str, within: timedelta) -> bool:
    """The newest order of the set within `within` is ordered and not yet done: a test
    already on its way, which a "due" card must not ask for again."""
    order = picture.order_on_record(order_set, within)
    return order is not None and order.state == "pending"


def already_on_record(
    picture: PatientPicture, order_set: str, within: timedelta, what: str
) -> tuple[OrderFact | None, str | None]:
    """The order already on the record for `order_set`, and the note saying so."""
    order = picture.order_on_record(order_set, within)
    if order is None:
        return None, None
    when = order.when.date().isoformat() if order.when else "date not recorded"
    if order.state == "pending":
        return order, f"{what} is already ordered ({order.name}, {when}): not suggested again."
    return order, f"{what} was done on {when} ({order.name}): not suggested again."


#: How a reason names an analyte ("ferritin 180 ng/mL on 2026-10-01").
ANALYTE_WORDS = {"transferrin-saturation": "TSAT", "egfr": "eGFR", "body-weight": "weight"}


def dated(lab: LabResult) -> str:
    """`ferritin 180 ng/mL on 2026-10-01`: a lab as a reason names it."""
    word = ANALYTE_WORDS.get(lab.analyte, lab.analyte)
    return f"{word} {format_lab(lab)} on {lab.effective.date().isoformat()}"


def recent_words(t: Params) -> str:
    """`in the last 365 days`: the recency window as a reason names it."""
    return f"in the last {t[RECENT]:g} days"


def order_words(order: OrderFact) -> str:
    """`Ferritin (ordered 2026-11-02)`: an order on record as a reason names it."""
    when = order.when.date().isoformat() if order.when else "date not recorded"
    state = "ordered" if order.state == "pending" else "done"
    return f"{order.name} ({state} {when})"
