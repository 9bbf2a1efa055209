"""``GET /api/v1/model``: the model card, from the verified manifest; and
``GET /api/v1/model/report/``: the model report and its plots, as
``regression-model report`` wrote them beside the artifact."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from api.app.core.dependencies import ModelServiceDep, SettingsDep
from api.app.core.exceptions import request_error
from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import Access, requires_key
from api.app.home_page import REPORT_PATH
from api.app.model_service import ModelService
from api.app.schemas import ErrorResponse, ModelCard
from regression_model import Report

# The card and the report describe the model, never what clients sent: open
# unless MODEL_CARD_REQUIRE_KEY (security.py).
router = APIRouter(
    prefix="/api/v1",
    tags=["model"],
    dependencies=[requires_key(Access.MODEL_CARD)],
    route_class=QueryCheckedRoute,
)

#: The report page: its own inline style (by hash) and same-origin plots, nothing else.
REPORT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src {style}; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def model_card(
    manifest: dict[str, Any], input_names: dict[str, str], report: Report | None = None
) -> ModelCard:
    """The card for a manifest; ``input_names`` maps model names to the names clients send."""
    features = [
        {**feature, "input_field": input_names.get(feature["name"], feature["name"])}
        for feature in manifest.get("features", [])
    ]
    links = None
    if report is not None:
        links = {
            "html": REPORT_PATH,
            "plots": [
                {"name": plot.name, "title": plot.title, "url": REPORT_PATH + plot.name}
                for plot in report.plots.values()
            ],
        }
    return ModelCard.model_validate({**manifest, "features": features, "report": links})


@router.get(
    "/model",
    response_model=ModelCard,
    responses={503: {"model": ErrorResponse, "description": "the model is not loaded"}},
    summary="Model card",
)
def get_model_card(service: ModelServiceDep, settings: SettingsDep) -> ModelCard:
    """Version, cross-validated metrics, baselines, slices, hashes, training
    profile of every feature, and links to the report's plots."""
    model = service.wait(settings.model_wait_seconds)
    renamed = {safe: raw for raw, safe in model.config.model.variables_to_rename.items()}
    return model_card(model.manifest, renamed, service.report)


def _report(service: ModelService, timeout: float) -> Report:
    service.wait(timeout)
    if service.report is None:
        raise request_error(
            404,
            "path",
            "no report was written for this model: run `regression-model report` where it "
            "was trained, then restart the service",
        )
    return service.report


_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no report, or no such plot"},
    503: {"model": ErrorResponse, "description": "the model is not loaded"},
}


@router.get(
    "/model/report/",
    response_class=HTMLResponse,
    responses=_REPORT_RESPONSES,
    summary="Model report (HTML)",
)
def get_report(service: ModelServiceDep, settings: SettingsDep) -> Response:
    """The evaluation for people: cross-validated error, baselines, slices, plots."""
    report = _report(service, settings.model_wait_seconds)
    return HTMLResponse(
        report.html,
        headers={
            "Content-Security-Policy": REPORT_SECURITY_POLICY.format(style=report.style_source),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get(
    "/model/report/{name}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_REPORT_RESPONSES},
    summary="A plot of the model report (PNG)",
)
def get_report_plot(name: str, service: ModelServiceDep, settings: SettingsDep) -> Response:
    """One plot, as drawn when the report was written (see the card's `report.plots`)."""
    plot = _report(service, settings.model_wait_seconds).plots.get(name)
    if plot is None:
        raise request_error(404, "path", f"no plot {name!r}: see report.plots in /api/v1/model")
    return Response(plot.png, media_type="image/png", headers={"Cache-Control": "no-cache"})
