"""Build the FastAPI application: settings, middleware, routers, error handlers.

Start it with ``python -m api`` or ``uvicorn --factory api.app.main:create_app``.
Importing this module does no I/O; the model loads in the background once the
app starts (see ``model_service.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from api import __version__ as api_version
from api.app.core.body_limit import BodyLimitMiddleware
from api.app.core.errors import install_error_handlers
from api.app.core.query_params import query_checked
from api.app.core.request_context import REQUEST_ID_HEADER
from api.app.core.security import API_KEY_HEADER
from api.app.core.settings import Settings
from api.app.core.structured_logging import configure_logging
from api.app.middleware import HeadAsGetMiddleware, RequestContextMiddleware
from api.app.model_service import ModelService
from api.app.openapi import install_openapi
from api.app.operations import metrics
from api.app.operations.drift_reports import DriftReports
from api.app.operations.log_writer import PredictionLog
from api.app.operations.outcome_store import OutcomeStore
from api.app.operations.performance_reports import PerformanceReports
from api.app.operations.shadow import Shadow
from api.app.routes import drift, health, model_card, outcomes, page, performance, predict
from api.app.routes import metrics as metrics_route

#: Where the docs page's JavaScript, CSS and icon are served from (the app itself).
DOCS_ASSETS = "/docs/assets"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: ModelService = app.state.model_service
    service.start()
    metrics.forget_dead_workers()
    flushing = asyncio.create_task(metrics.flush_periodically())
    log: PredictionLog | None = app.state.prediction_log
    if log is not None:
        log.start()
    shadow: Shadow | None = app.state.shadow
    if shadow is not None:
        shadow.start()
    try:
        yield
    finally:
        flushing.cancel()
        metrics.flush()
        # After uvicorn has drained the requests: write (or spool) what is queued.
        if log is not None:
            await run_in_threadpool(log.close)
        store: OutcomeStore | None = app.state.outcome_store
        if store is not None:
            await run_in_threadpool(store.close)
        reports: PerformanceReports | None = app.state.performance_reports
        if reports is not None:
            await run_in_threadpool(reports.close)
        if shadow is not None:
            await run_in_threadpool(shadow.close)


def _prediction_log(settings: Settings) -> PredictionLog | None:
    url = settings.prediction_log_url
    if url is None:
        return None
    return PredictionLog(
        url,
        settings.spool_dir,
        flush_seconds=settings.prediction_log_flush_seconds,
        timeout=settings.prediction_log_timeout_seconds,
        max_queued_records=settings.prediction_log_max_queued_records,
        max_backoff_seconds=settings.prediction_log_max_backoff_seconds,
        retention_days=settings.prediction_log_retention_days,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service, configured from ``settings`` (default: the environment)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    # fastapi-offline: the same Swagger UI page as FastAPI's, with its assets
    # (Swagger UI 5, pinned by the package's version) served by the app from
    # DOCS_ASSETS instead of a public CDN, so /docs works on a network with no
    # internet. ReDoc is off.
    app = FastAPIOffline(
        title="Ames house prices API",
        version=api_version,
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS,
        openapi_url="/api/v1/openapi.json",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.model_service = ModelService()
    app.state.prediction_log = log = _prediction_log(settings)
    app.state.outcome_store = (
        None
        if log is None
        else OutcomeStore(log.url, timeout=settings.prediction_log_timeout_seconds)
    )
    app.state.shadow = (
        None
        if settings.challenger_model_dir is None
        else Shadow(
            settings.challenger_model_dir,
            settings.prediction_log_url,
            max_queued_houses=settings.shadow_max_queued_houses,
            timeout=settings.prediction_log_timeout_seconds,
        )
    )
    app.state.drift_reports = (
        DriftReports(
            log, window=settings.drift_window, max_age_seconds=settings.drift_cache_seconds
        )
        if log is not None
        else None
    )

    app.state.performance_reports = (
        PerformanceReports(
            log.url,
            timeout=settings.prediction_log_timeout_seconds,
            max_age_seconds=settings.drift_cache_seconds,
        )
        if log is not None
        else None
    )

    install_error_handlers(app)
    for router in (
        predict.router,
        outcomes.router,
        model_card.router,
        drift.router,
        performance.router,
        health.router,
        metrics_route.router,
        page.router,
    ):
        app.include_router(router)
    # Starlette tries routes in order, and fastapi-offline adds the docs (a page
    # and a mount of its assets, matched by prefix) first: behind the API's
    # routes they cost /predict nothing (about 6 µs a request in front of them).
    docs = [route for route in app.router.routes if getattr(route, "path", "").startswith("/docs")]
    app.router.routes[:] = [route for route in app.router.routes if route not in docs] + docs
    # The routes FastAPI and fastapi-offline made (the OpenAPI document, the
    # docs pages) refuse undeclared query parameters too, as the routers' do.
    app.router.routes[:] = [query_checked(route) for route in app.router.routes]
    install_openapi(app)

    # Added innermost first: RequestContext wraps everything (ids, access log, last-resort
    # 500), CORS wraps the body limit so browsers can read a 413; HEAD is answered as GET
    # by the routes, inside all of them.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_drain_bytes=settings.max_drain_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, count=settings.metrics)
    return app
