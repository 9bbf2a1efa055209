"""Argument types the commands share."""

from __future__ import annotations

import argparse
from datetime import datetime

from regression_model.monitoring import since


def positive(text: str) -> int:
    """A whole number of at least 1 (``--chunk-rows``, ``--batch-rows``)."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def parse_since(text: str) -> datetime:
    """``--since`` and ``--older-than``: see :func:`monitoring.since.parse_since`."""
    try:
        return since.parse_since(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def coverage(text: str) -> float:
    """A price range's coverage, a probability strictly between 0 and 1
    (``--coverage``); whether the model has it is the model's to say."""
    number = float(text)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (such as 0.8), got {text}")
    return number
