"""Service settings, read from the environment (pydantic-settings).

Every name is the bare environment variable a PaaS or container expects
(``PORT``, ``WEB_CONCURRENCY``, ``API_KEY``, ...), case-insensitive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class Settings(BaseSettings):
    """Everything an operator may tune without touching code."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    port: int = Field(default=8001, ge=1, le=65535, description="TCP port to listen on")
    web_concurrency: int = Field(
        default=1, ge=1, le=64, description="worker processes (each loads the model)"
    )
    log_level: LogLevel = "info"
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated origins allowed to call the API from a browser",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="larger request bodies get 413"
    )
    max_rows: int = Field(default=2000, ge=1, description="more houses per request get 413")
    max_json_depth: int = Field(
        default=16, ge=4, description="JSON nested deeper than this is refused (422)"
    )
    api_key: SecretStr | None = Field(
        default=None, description="when set, /predict requires it in the X-API-Key header"
    )
    model_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how long a prediction request waits for a model that is still loading",
    )
    graceful_shutdown_seconds: int = Field(
        default=20, ge=1, description="time in-flight requests get after SIGTERM"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        # `docker run -e API_KEY=` must not enable auth with an empty key.
        if isinstance(value, str) and not value.strip():
            return None
        return value
