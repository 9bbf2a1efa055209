"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ChallengerStatus(BaseModel):
    """The shadow challenger of this worker (``CHALLENGER_MODEL_DIR``)."""

    state: Literal["loading", "shadowing", "failed"]
    version: str | None = Field(
        default=None, description="its label: model version + its tables' sha256 prefix"
    )
    detail: str | None = Field(default=None, description="why it is not shadowing")


class Health(BaseModel):
    """The process is up and answering (says nothing about the model)."""

    status: Literal["ok"] = "ok"
    service: str
    api_version: str
    model_version: str
    challenger: ChallengerStatus | None = Field(
        default=None, description="only when a challenger is configured"
    )


class Readiness(BaseModel):
    """Whether the model is loaded, verified and has priced a canary house."""

    ready: bool
    status: Literal["loading", "ready", "failed"]
    model_version: str
    detail: str | None = Field(default=None, description="why the service is not ready")
