"""Argument types the commands share."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of at least 1 (``--chunk-rows``, ``--batch-rows``)."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
