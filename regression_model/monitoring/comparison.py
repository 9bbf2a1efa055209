"""Champion against challenger on the traffic the service saw
(``regression-model compare``): the logged prices joined to the challenger's
shadow prices of the same houses (the service's ``CHALLENGER_MODEL_DIR``).

For every house both models priced, the relative difference
``challenger / champion - 1``: its quantiles, the share of houses beyond 1 %,
5 % and 10 %, the same by slice (the config's ``slice_vars``, as the logged
house has them), and the houses that move most (by request, row and id).
Where a sale price came back (the ``outcomes`` table), each model's realised
RMSLE and bias on those same houses. A house's sale is the outcome that
names its request and row (``request:<request_id>:<row>``), else the one
that names its key (``key:<Id>``): every shadowed pricing of a house sold is
scored, once for each model, so both are judged on exactly the same houses.

The log is read in chunks: memory holds 8 bytes per compared house (the
differences, for their quantiles), running sums per slice label, and the
``top`` houses that moved most.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, func, select

from regression_model.config.core import Config
from regression_model.monitoring.log_rows import OUTCOME, Unreadable, readable, tolerant
from regression_model.monitoring.log_store import outcomes, predictions, shadow_prices, utc

#: The quantiles of the relative difference reported.
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: The shares of houses whose prices differ by more than these (relative).
THRESHOLDS = (0.01, 0.05, 0.10)
#: Houses read per query.
CHUNK_ROWS = 2000
#: When a challenger whose shadow prices' time is unreadable last shadowed.
_NEVER = datetime.min.replace(tzinfo=UTC)


class NoShadowPricesError(LookupError):
    """The log holds no shadow prices to compare (in the window, or of the
    challenger asked for); the message says which there are."""


@dataclass(frozen=True, order=True)
class MovedHouse:
    """A house both models priced, ordered by how far they disagree."""

    distance: float
    relative: float
    log_id: str
    row: int
    request_id: str
    house_id: str | None
    champion: float
    challenger: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "row": self.row,
            "log_id": self.log_id,
            "id": self.house_id,
            "champion": self.champion,
            "challenger": self.challenger,
            "relative_difference": self.relative,
        }


@dataclass
class _Spread:
    """Running sums of the relative differences of one group of houses."""

    houses: int = 0
    total: float = 0.0
    total_absolute: float = 0.0
    beyond: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS))

    def add(self, relative: float) -> None:
        self.houses += 1
        self.total += relative
        self.total_absolute += abs(relative)
        for position, threshold in enumerate(THRESHOLDS):
            self.beyond[position] += abs(relative) > threshold

    def as_dict(self) -> dict[str, Any]:
        n = max(self.houses, 1)
        return {
            "houses": self.houses,
            "mean_relative_difference": self.total / n if self.houses else None,
            "mean_absolute_relative_difference": self.total_absolute / n if self.houses else None,
            "share_beyond": {
                f"{threshold:.0%}": count / n if self.houses else None
                for threshold, count in zip(THRESHOLDS, self.beyond, strict=True)
            },
        }


@dataclass
class _Realised:
    """Running sums of both models' log errors on the houses sold."""

    houses: int = 0
    squared: list[float] = field(default_factory=lambda: [0.0, 0.0])
    signed: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def add(self, champion: float, challenger: float, sale_price: float) -> None:
        self.houses += 1
        for model, price in enumerate((champion, challenger)):
            error = math.log(price) - math.log(sale_price)
            self.squared[model] += error * error
            self.signed[model] += error

    def as_dict(self) -> dict[str, Any]:
        if not self.houses:
            return {"houses": 0, "champion": None, "challenger": None}
        return {
            "houses": self.houses,
            **{
                name: {
                    "rmsle": math.sqrt(self.squared[model] / self.houses),
                    "bias": self.signed[model] / self.houses,
                }
                for model, name in enumerate(("champion", "challenger"))
            },
        }


def challengers(engine: Engine, since: datetime | None = None) -> list[tuple[str, int, datetime]]:
    """Each challenger with shadow prices (since ``since``): its label, how
    many houses, and when it last shadowed one; the latest first."""
    query = select(
        shadow_prices.c.challenger_version,
        func.count(),
        tolerant(func.max(shadow_prices.c.logged_at), "logged_at"),
    ).group_by(shadow_prices.c.challenger_version)
    if since is not None:
        query = query.where(shadow_prices.c.logged_at >= utc(since))
    with engine.connect() as connection:
        found = [
            # A time that is none (SQLite keeps any value) sorts last, as the oldest.
            (str(label), int(n), utc(last) if readable("logged_at", last) else _NEVER)
            for label, n, last in connection.execute(query)
        ]
    return sorted(found, key=lambda item: item[2], reverse=True)


def compare(
    engine: Engine,
    config: Config,
    *,
    since: datetime | None = None,
    challenger: str | None = None,
    top: int = 10,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """The comparison (module docstring) of ``challenger`` (default: the one
    that shadowed last) with the prices the service answered, for the houses
    logged since ``since``. Raises :class:`NoShadowPricesError` when there is
    nothing to compare."""
    found = challengers(engine, since)
    labels = [label for label, _, _ in found]
    if not found or (challenger is not None and challenger not in labels):
        there = ", ".join(labels) or "none"
        raise NoShadowPricesError(
            f"no shadow prices of {challenger or 'any challenger'}"
            + (f" since {since.isoformat(timespec='seconds')}" if since else "")
            + f" (challengers there: {there}); is CHALLENGER_MODEL_DIR set on the service?"
        )
    label = challenger or labels[0]
    overall = _Spread()
    slices: dict[str, dict[str, _Spread]] = {name: {} for name in config.model.slice_vars}
    realised = _Realised()
    moved: list[MovedHouse] = []
    differences: list[np.ndarray] = []
    champion_versions: set[str] = set()
    only = {"champion": 0, "challenger": 0, "neither": 0}
    skipped = Unreadable()
    for chunk in _shadowed(engine, label, since, chunk_rows, skipped):
        sales = _sale_prices(engine, config, chunk, skipped)
        relatives = []
        for house in chunk:
            champion, price = house["price"], house["shadow_price"]
            if champion is None or price is None:
                side = "neither" if champion is None and price is None else (
                    "champion" if price is None else "challenger"
                )  # fmt: skip
                only[side] += 1
                continue
            champion_versions.add(house["model_version"])
            relative = price / champion - 1.0
            relatives.append(relative)
            overall.add(relative)
            inputs = house["inputs"] if isinstance(house["inputs"], Mapping) else {}
            for name, groups in slices.items():
                groups.setdefault(_label(inputs.get(name)), _Spread()).add(relative)
            entry = MovedHouse(
                abs(relative),
                relative,
                house["log_id"],
                house["row"],
                house["request_id"],
                _house_id(inputs, config),
                champion,
                price,
            )
            if len(moved) < top:
                heapq.heappush(moved, entry)
            elif top:
                heapq.heappushpop(moved, entry)
            sale = sales.get((house["log_id"], house["row"]))
            if sale is not None:
                realised.add(champion, price, sale)
        differences.append(np.asarray(relatives, dtype="float64"))
    values = np.concatenate(differences) if differences else np.empty(0)
    return {
        "challenger": label,
        "champion_versions": sorted(champion_versions),
        "other_challengers": [
            {"challenger": other, "houses": n, "last_shadowed": last.isoformat()}
            for other, n, last in found
            if other != label
        ],
        "since": since.isoformat(timespec="seconds") if since else None,
        "compared": overall.as_dict(),
        "priced_by_one_only": {
            "champion_only": only["champion"],
            "challenger_only": only["challenger"],
            "neither": only["neither"],
        },
        "quantiles": {
            f"{q:g}": float(np.quantile(values, q)) if values.size else None for q in QUANTILES
        },
        "slices": {
            name: {
                group: spread.as_dict()
                for group, spread in sorted(groups.items(), key=lambda item: -item[1].houses)
            }
            for name, groups in slices.items()
        },
        "moved_most": [house.as_dict() for house in sorted(moved, reverse=True)],
        "realised": realised.as_dict(),
        "unreadable": skipped.records,
    }


def _label(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def _house_id(inputs: Mapping[str, Any], config: Config) -> str | None:
    value = inputs.get(config.model.id_column)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _shadowed(
    engine: Engine, label: str, since: datetime | None, chunk_rows: int, skipped: Unreadable
) -> Iterator[list[dict[str, Any]]]:
    """The logged houses ``label`` shadowed, with both prices, in chunks; one
    with a value its column cannot hold skipped, counted in ``skipped``."""
    query = select(
        predictions.c.log_id,
        predictions.c.row,
        predictions.c.request_id,
        predictions.c.model_version,
        tolerant(predictions.c.inputs),
        tolerant(predictions.c.price),
        tolerant(shadow_prices.c.price, "shadow_price"),
    ).join(
        shadow_prices,
        and_(
            shadow_prices.c.log_id == predictions.c.log_id,
            shadow_prices.c.row == predictions.c.row,
            shadow_prices.c.challenger_version == label,
        ),
    )
    if since is not None:
        query = query.where(predictions.c.logged_at >= utc(since))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=chunk_rows).execute(
            query
        )
        for partition in result.partitions(chunk_rows):
            chunk = []
            for row in partition:
                house = dict(row._mapping)
                if all(readable(name, value) for name, value in house.items()):
                    chunk.append(house)
                else:
                    skipped.add((house["log_id"], house["row"]))
            yield chunk


def _sale_prices(
    engine: Engine, config: Config, houses: Sequence[Mapping[str, Any]], skipped: Unreadable
) -> dict[tuple[str, int], float]:
    """Each house's sale price, where one came back: the outcome naming its
    request and row, else the one naming its key."""
    by_request = {f"request:{h['request_id']}:{h['row']}": h for h in houses}
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for house in houses:
        inputs = house["inputs"] if isinstance(house["inputs"], Mapping) else {}
        key = _house_id(inputs, config)
        if key is not None:
            by_key.setdefault(f"key:{key}", []).append(house)
    wanted = [*by_request, *by_key]
    if not wanted:
        return {}
    query = select(outcomes.c.reference, tolerant(outcomes.c.sale_price)).where(
        outcomes.c.reference.in_(wanted)
    )
    sold = {}
    with engine.connect() as connection:
        for reference, price in connection.execute(query):
            if readable("sale_price", price):
                sold[reference] = float(price)
            else:
                skipped.add((OUTCOME, reference))
    prices: dict[tuple[str, int], float] = {}
    for reference, group in by_key.items():
        if reference in sold:
            for house in group:
                prices[(house["log_id"], house["row"])] = sold[reference]
    for reference, house in by_request.items():  # the request's own outcome wins
        if reference in sold:
            prices[(house["log_id"], house["row"])] = sold[reference]
    return prices
