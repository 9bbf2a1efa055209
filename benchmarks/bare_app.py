"""A bare FastAPI app: the HTTP ceiling of this machine for the API's requests.

It accepts the API's request, ``POST /api/v1/predict`` with
``{"inputs": [house, ...]}``, validates each house with the package's pydantic
model (``house_input_model()``, generated from ``config.yml``), and answers with
a constant price per house in the API's response shape. It also answers
``GET /api/v1/ready`` and names its worker in ``X-Worker-PID``, as the API does.
There is no model, no middleware and no logging per request, and the endpoints are
``async`` (no threadpool hop):
what the API adds on top of this is what the benchmark compares.

    python -m benchmarks.bare_app --host 127.0.0.1 --port 8002 --workers 2
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from pydantic import BaseModel, Field, create_model

from regression_model import __version__, house_input_model

PRICE = 180_000.0


class PredictionResponse(BaseModel):
    predictions: list[float | None]
    errors: list[dict[str, Any]] | None
    version: str


HouseInput = house_input_model()
PredictRequest = create_model(
    "PredictRequest",
    inputs=(list[HouseInput], Field(min_length=1)),  # type: ignore[valid-type]
)
PID = str(os.getpid())  # each worker imports this module in its own process

app = FastAPI(title="bare app (benchmark)")


@app.get("/api/v1/ready")
async def ready(response: Response) -> dict[str, Any]:
    response.headers["X-Worker-PID"] = PID
    return {"ready": True, "status": "ready"}


@app.post("/api/v1/predict", response_model=PredictionResponse)
async def predict(
    body: PredictRequest,  # type: ignore[valid-type]
    response: Response,
) -> PredictionResponse:
    response.headers["X-Worker-PID"] = PID
    count = len(body.inputs)  # type: ignore[attr-defined]
    return PredictionResponse(predictions=[PRICE] * count, errors=None, version=__version__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        "benchmarks.bare_app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        server_header=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
