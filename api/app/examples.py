"""Real houses from the package's copy of Kaggle's test.csv.

Used as OpenAPI request examples, as the canary the service prices before it
reports ready, and to pre-fill the page's form (``example_houses``, the
package's: read on first use, not on import).
"""

from __future__ import annotations

from typing import Any

from regression_model import example_houses

__all__ = ["canary_house", "example_houses"]


def canary_house() -> dict[str, Any]:
    """The house the service must price before it reports ready."""
    return dict(example_houses()[0])
