"""What the shadow challenger's queue holds of a priced request
(:mod:`api.app.operations.shadow`): its houses as parsed, to validate again,
or as the champion validated them; never more bytes than the model reads."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regression_model import ValidationResult

#: Requests of up to this many houses are queued as parsed and validated
#: again by the challenger, many requests in one batch; larger ones as the
#: champion validated them, priced without checking them again. Measured on
#: one core: a house priced alone from its validation result costs 76 µs, in
#: a batch of 12 validated again 52 µs; a request of 100 houses costs the
#: challenger 3.2 ms of CPU validated again, 0.7 ms from the champion's.
REVALIDATED_MAX_HOUSES = 16


@dataclass(frozen=True)
class Shadowed:
    """A request queued for the challenger: its log_id, when, and its houses:
    ``validated``, as the champion validated them (a validation result per
    chunk, in order: both models check houses by the active config's rules),
    or for a small request ``houses`` as parsed, with ``strict``."""

    log_id: str
    moment: float
    validated: Sequence[ValidationResult] = ()
    houses: Sequence[Any] = ()
    strict: bool = False

    @property
    def count(self) -> int:
        return len(self.houses) + sum(checked.n_rows for checked in self.validated)


def _known(houses: Sequence[Any], known_fields: frozenset[str], *, strict: bool) -> list[Any]:
    """Houses as the challenger needs them: a house's fields beyond the
    model's (megabytes of them fit in a body) left out, so that the queue's
    bound in houses is one in bytes too; in strict mode one of them is kept,
    without its value, so the challenger refuses the house as the champion
    did. The model's own fields of a priced house are short."""
    kept: list[Any] = []
    for house in houses:
        if not isinstance(house, Mapping) or known_fields.issuperset(house):
            kept.append(house)
            continue
        known = {name: value for name, value in house.items() if name in known_fields}
        if strict:
            known[next(name for name in house if name not in known_fields)] = None
        kept.append(known)
    return kept


def shadowed(
    log_id: str,
    houses: Sequence[Any],
    validated: Sequence[ValidationResult],
    known_fields: frozenset[str],
    *,
    strict: bool,
) -> Shadowed:
    """A priced request as queued: a small one's houses without their fields
    beyond the model's (:func:`_known`), a larger one as validated."""
    if len(houses) <= REVALIDATED_MAX_HOUSES:
        known = _known(houses, known_fields, strict=strict)
        return Shadowed(log_id, time.time(), houses=known, strict=strict)
    return Shadowed(log_id, time.time(), validated=validated)
