"""The design card's entry point: ``make_prediction(input_data=...)``, a thin
call of the public :class:`~regression_model.Model` (see
:func:`regression_model.load_model`)."""

from __future__ import annotations

from collections.abc import Sequence

from regression_model.scoring.model import Engine, PredictionResult, load_model
from regression_model.scoring.validation import InputData


def make_prediction(
    *,
    input_data: InputData,
    engine: Engine = "tables",
    explain: bool = False,
    strict: bool = False,
    coverages: Sequence[float] | None = None,
    timings: dict[str, float] | None = None,
) -> PredictionResult:
    """Price every row of ``input_data`` (a DataFrame, list of dicts or dict):
    the design card's entry point, ``load_model(engine=engine).predict(...)``
    (see :meth:`Model.predict` for the result)."""
    return load_model(engine=engine).predict(
        input_data, explain=explain, strict=strict, coverages=coverages, timings=timings
    )
