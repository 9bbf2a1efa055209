"""The single source of the package and model version: the VERSION file."""

from pathlib import Path

__version__ = (Path(__file__).resolve().parent / "VERSION").read_text().strip()
