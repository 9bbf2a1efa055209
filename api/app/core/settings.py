"""Service settings, read from the environment (pydantic-settings).

Every name is the bare environment variable a PaaS or container expects
(``PORT``, ``WEB_CONCURRENCY``, ``API_KEY``, ...), case-insensitive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from regression_model.monitoring import log_url

LogLevel = Literal["critical", "error", "warning", "info", "debug"]

#: Where every worker writes its metrics, read by prometheus-client when it
#: is imported (so set before any worker imports it: ``python -m api`` does);
#: not a setting, since the library reads it itself.
MULTIPROC_ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


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
    strict_fields: bool = Field(
        default=False,
        description="refuse (a per-house error) fields that are not model inputs, instead of "
        "ignoring them with a warning; a request's ?strict= overrides it",
    )
    max_json_depth: int = Field(
        default=16, ge=4, description="JSON nested deeper than this is refused (422)"
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="when set, /predict, /outcomes and /drift (what clients sent) require it "
        "in the X-API-Key header; see METRICS_REQUIRE_KEY and MODEL_CARD_REQUIRE_KEY",
    )
    metrics_require_key: bool = Field(
        default=False,
        description="with API_KEY set, /metrics requires it too (default: open, for a "
        "scraper on a private network)",
    )
    model_card_require_key: bool = Field(
        default=False,
        description="with API_KEY set, the model card (/api/v1/model) and the model report "
        "require it too (default: open: they describe the model, not what clients sent)",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a request body not complete this long after the request began gets "
        "408 and the connection is closed (a client trickling bytes holds no connection)",
    )
    model_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="how long a prediction request waits for a model that is still loading",
    )
    graceful_shutdown_seconds: int = Field(
        default=20, ge=1, description="time in-flight requests get after SIGTERM"
    )
    max_drain_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="an over-limit body is read and discarded up to this many bytes, so that "
        "every client (not only curl) receives the 413 before the connection closes",
    )
    metrics: bool = Field(
        default=True, description="count requests and predictions and serve /metrics"
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="the prediction log's database (SQLAlchemy URL; postgres:// and "
        "postgresql:// use psycopg 3); wins over PREDICTION_LOG_PATH",
    )
    prediction_log_path: Path | None = Field(
        default=None, description="SQLite file of the prediction log, when DATABASE_URL is unset"
    )
    prediction_log_spool_dir: Path | None = Field(
        default=None,
        description="where records wait while the database is down (default: next to the "
        "SQLite file, or ./prediction-log-spool)",
    )
    prediction_log_flush_seconds: float = Field(
        default=0.25, gt=0, le=60, description="how often queued records are written"
    )
    prediction_log_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="bound on connecting to the log's database and on each write",
    )
    prediction_log_max_queued_records: int = Field(
        default=20_000,
        ge=1,
        description="houses a worker holds in memory for the log's database; beyond, "
        "the oldest go to the spool file (replayed later), or, when the spool cannot be "
        "written either (a full disk), are dropped (counted, logged at ERROR)",
    )
    prediction_log_max_backoff_seconds: float = Field(
        default=30.0,
        gt=0,
        description="longest wait between retries of a failing log database or spool "
        "(from 1 s, doubling with each failure in a row)",
    )
    prediction_log_retention_days: float = Field(
        default=90.0,
        ge=0,
        description="records older than this many days are deleted by the writer, in "
        "small batches, every 10 minutes; 0 keeps them forever",
    )
    challenger_model_dir: Path | None = Field(
        default=None,
        description="a second model's artifact directory (one version's manifest and tables, "
        "verified; another version may be): it prices every priced request too, off the "
        "request path, its prices stored beside the log's (shadow_prices), never returned; "
        "needs the prediction log",
    )
    shadow_max_queued_houses: int = Field(
        default=20_000,
        ge=1,
        description="houses a worker holds for the challenger; beyond, a request's houses "
        'are not shadowed (counted in shadow_prices_total{outcome="dropped"})',
    )
    drift_window: int = Field(
        default=10_000, ge=1, le=200_000, description="most recent houses GET /drift compares"
    )
    drift_cache_seconds: float = Field(
        default=30.0, ge=0, description="GET /drift answers from a report at most this old"
    )
    drift_since_rounding_seconds: int = Field(
        default=3600,
        ge=1,
        le=366 * 86400,
        description="GET /drift rounds `since` down to a multiple of this (UTC), so that "
        "clients share a few cached reports",
    )
    drift_wait_seconds: float = Field(
        default=15.0,
        ge=0,
        le=600,
        description="how long GET /drift waits for a report being computed before answering "
        "with the previous one, or 503 with Retry-After when there is none",
    )

    @property
    def prediction_log_url(self) -> str | None:
        """Where the prediction log goes, or None when it is off (the package's
        rule, as ``regression-model drift`` finds it)."""
        url = None if self.database_url is None else self.database_url.get_secret_value()
        return log_url(url, self.prediction_log_path)

    @property
    def spool_dir(self) -> Path:
        if self.prediction_log_spool_dir is not None:
            return self.prediction_log_spool_dir
        if self.database_url is None and self.prediction_log_path is not None:
            return self.prediction_log_path.with_name(self.prediction_log_path.name + ".spool")
        return Path("prediction-log-spool")

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
