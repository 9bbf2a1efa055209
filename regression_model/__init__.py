"""House-price regression model: config-driven training and prediction."""

from pathlib import Path

#: The single source of the package and model version.
__version__ = (Path(__file__).resolve().parent / "VERSION").read_text().strip()

__all__ = ["__version__"]
