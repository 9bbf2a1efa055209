"""One house's price split into the model's terms, for ``explain=True``.

The compiled model is a sum in log-price (see ``scoring/tables.py``), so each
term is an effect on the price: a factor, and dollars when the terms are
applied largest first.
"""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np


class Factor(TypedDict):
    """One term of the model's sum, for one house (see :func:`explain`)."""

    variable: str
    log_effect: float
    factor: float
    dollars: float


class Explanation(TypedDict):
    """One house's price split into the model's terms (see :func:`explain`)."""

    baseline: float
    log_baseline: float
    factors: list[Factor]


def explain(
    contributions: np.ndarray, names: list[str], intercept: float, price: float
) -> Explanation:
    """One house's price split into its terms, largest effect first.

    Each term has its effect in log-price (``log_effect``; with the baseline
    they sum to log(price)), as a factor on the price (``factor``; the
    baseline times every factor is the price), and in dollars (``dollars``:
    the price change when the terms are applied in this order, largest first;
    the baseline plus every term's dollars is the price). Terms that are zero
    for this house are left out.
    """
    order = sorted(
        (i for i, value in enumerate(contributions) if value != 0.0),
        key=lambda i: (-abs(contributions[i]), names[i]),
    )
    baseline = math.exp(intercept)
    factors: list[Factor] = []
    running_log, before = intercept, baseline
    for position, index in enumerate(order, start=1):
        effect = float(contributions[index])
        running_log += effect
        # The last step ends on the price itself, so the dollars add up to it
        # rather than to a re-summed log (which may differ in the last bit).
        reached = price if position == len(order) else math.exp(running_log)
        factors.append(
            {
                "variable": names[index],
                "log_effect": effect,
                "factor": math.exp(effect),
                "dollars": reached - before,
            }
        )
        before = reached
    return {"baseline": baseline, "log_baseline": intercept, "factors": factors}
