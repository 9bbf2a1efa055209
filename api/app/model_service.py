"""The model behind the API: loaded once per worker, off the request path.

Loading starts in a background thread when the app starts (so liveness
answers at once); the service is *ready* only after the package's
``load_model()`` has verified the artifact against its manifest and a real
house (the canary) has been priced. Prediction requests that arrive while
the model loads wait for it, up to a bound.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from api.app.core.exceptions import ModelUnavailableError
from api.app.examples import canary_house
from regression_model import (
    WHOLE_ROW,
    CompiledModel,
    PredictionResult,
    Report,
    ReportUnavailableError,
    ValidationResult,
    load_model,
)
from regression_model import __version__ as model_version

logger = logging.getLogger(__name__)


class ModelState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class CanaryError(RuntimeError):
    """The loaded model could not price a known-good house."""


class ModelService:
    """Loads, checks and serves the package's model for one process."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._model: CompiledModel | None = None
        self._state = ModelState.LOADING
        self.canary_price: float | None = None
        #: the report beside the artifact (page and plots), if there is one for this model
        self.report: Report | None = None

    @property
    def state(self) -> ModelState:
        return self._state

    @property
    def is_ready(self) -> bool:
        return self._state is ModelState.READY

    @property
    def model(self) -> CompiledModel | None:
        """The loaded model, or None while it loads (or when it failed); never waits."""
        return self._model

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The verified manifest of the loaded model (None until it is loaded)."""
        return self._model.manifest if self._model is not None else None

    @functools.cached_property
    def input_fields(self) -> frozenset[str]:
        """Every known field an error may name: the model's (each input in
        every spelling it accepts, and the id column), and ``*``. Read after a
        prediction, so the model is loaded."""
        model = self._model
        assert model is not None, "input_fields is read after the model priced a request"
        return model.known_fields | {WHOLE_ROW}

    def start(self) -> None:
        """Begin loading in a background thread (once)."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            model = load_model()
            canary = model.predict([canary_house()])
            price = canary["predictions"][0]
            if canary["errors"] or price is None or not math.isfinite(price) or price <= 0:
                raise CanaryError(f"canary house priced {price!r}, errors {canary['errors']}")
        except Exception:
            # Anything that stops the model loading leaves the service alive but
            # not ready, with the reason in the log (and never in a response).
            self._state = ModelState.FAILED
            logger.exception("model failed to load; the service will not become ready")
        else:
            self.report = _model_report(model)
            self._model = model
            self.canary_price = price
            self._state = ModelState.READY
            logger.info(
                "model ready",
                extra={
                    "model_version": model_version,
                    "tables_sha256": model.manifest["tables"]["sha256"],
                    "canary_price": round(price, 2),
                    "load_seconds": round(time.perf_counter() - started, 3),
                },
            )
        finally:
            self._done.set()

    def wait(self, timeout: float) -> CompiledModel:
        """The loaded model, waiting up to ``timeout`` seconds for it."""
        self.start()
        self._done.wait(timeout)
        if self._model is None:
            raise ModelUnavailableError(loading=self._state is ModelState.LOADING)
        return self._model

    def predict(
        self,
        houses: Sequence[Any],
        timeout: float,
        *,
        explain: bool = False,
        strict: bool = False,
        coverages: Sequence[float] | None = None,
        timings: dict[str, float] | None = None,
        validated: list[ValidationResult] | None = None,
    ) -> PredictionResult:
        """The model's ``predict`` over ``houses`` (parsed JSON values, one per
        house): a value that is not an object is an error of its row, so every
        row keeps its position and the valid rows form the same batch as when
        calling ``predict`` on the objects alone. ``coverages`` chooses the
        price ranges (None: all); one the model lacks is an
        ``UnknownCoverageError``. ``validated`` receives the houses'
        validation results (a shadow challenger prices them)."""
        model = self.wait(timeout)
        return model.predict(
            houses,
            explain=explain,
            strict=strict,
            refuse_non_objects=True,
            coverages=coverages,
            timings=timings,
            validated=validated,
        )


def _model_report(model: CompiledModel) -> Report | None:
    """The report written beside the artifact, read once (PNGs as drawn: no
    matplotlib here); None, with the reason logged, when there is none for
    this model. The service works without it."""
    try:
        return model.report()
    except ReportUnavailableError as reason:
        logger.warning("no model report to serve", extra={"reason": str(reason)})
        return None
