"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    """The process is up and answering (says nothing about the model)."""

    status: Literal["ok"] = "ok"
    service: str
    api_version: str
    model_version: str


class Readiness(BaseModel):
    """Whether the model is loaded, verified and has priced a canary house."""

    ready: bool
    status: Literal["loading", "ready", "failed"]
    model_version: str
    detail: str | None = Field(default=None, description="why the service is not ready")
