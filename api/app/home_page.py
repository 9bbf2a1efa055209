"""The page for people at ``/``: what the service is, the model and its
metrics, and a form that prices one house through the public API.

The form's controls are derived, not typed: ranges and allowed codes from the
package's input schema, neighbourhood choices from the training profile in
the manifest, default values from a real house of test.csv.
"""

from __future__ import annotations

import functools
import html
import json
from datetime import UTC, datetime
from importlib.resources import files
from string import Template

from api import __version__ as api_version
from api.app.examples import example_houses
from api.app.schemas.predict import house_schema
from regression_model import CompiledModel, Report
from regression_model import __version__ as model_version

#: Where the API serves the report (see routes/model_card.py).
REPORT_PATH = "/api/v1/model/report/"

#: The fields a person may edit, with their labels (a UI choice, not a schema).
KEY_FIELDS: tuple[tuple[str, str], ...] = (
    ("Neighborhood", "Neighbourhood"),
    ("OverallQual", "Overall quality (1 = very poor, 10 = excellent)"),
    ("GrLivArea", "Living area above ground (sq ft)"),
    ("TotalBsmtSF", "Basement area (sq ft)"),
    ("YearBuilt", "Year built"),
    ("GarageCars", "Garage size (cars)"),
    ("FullBath", "Full bathrooms above ground"),
    ("KitchenQual", "Kitchen quality"),
    ("LotArea", "Lot area (sq ft)"),
)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


@functools.cache
def _template() -> Template:
    source = files("api.app.templates").joinpath("index.html").read_text(encoding="utf-8")
    return Template(source)


def _options(choices: list[str], selected: object) -> str:
    return "".join(
        f'<option value="{html.escape(choice)}"'
        f"{' selected' if choice == selected else ''}>{html.escape(choice)}</option>"
        for choice in choices
    )


def _control(name: str, label: str, value: object, categories: dict[str, list[str]]) -> str:
    """One labelled input, constrained as the schema says."""
    spec = house_schema()["properties"][name]
    branch = next(b for b in spec.get("anyOf", [spec]) if b.get("type") != "null")
    ident = f"field-{name}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 882.0 in the CSV is shown as 882 (the same number)
    text_value = "" if value is None else str(value)
    if "enum" in branch or name in categories:
        choices = [str(c) for c in branch.get("enum") or categories[name]]
        if text_value and text_value not in choices:
            choices.append(text_value)
        control = (
            f'<select id="{ident}" name="{html.escape(name)}" data-field="{html.escape(name)}" '
            f'data-kind="text"><option value="">(unknown)</option>'
            f"{_options(choices, text_value)}</select>"
        )
    elif branch.get("type") in ("number", "integer"):
        limits = "".join(
            f' {attribute}="{branch[key]:g}"'
            for attribute, key in (("min", "minimum"), ("max", "maximum"))
            if key in branch
        )
        step = "1" if branch["type"] == "integer" else "any"
        control = (
            f'<input id="{ident}" name="{html.escape(name)}" data-field="{html.escape(name)}" '
            f'data-kind="number" type="number" inputmode="decimal" step="{step}"{limits} '
            f'value="{html.escape(text_value)}">'
        )
    else:
        control = (
            f'<input id="{ident}" name="{html.escape(name)}" data-field="{html.escape(name)}" '
            f'data-kind="text" type="text" value="{html.escape(text_value)}">'
        )
    return f'<div><label for="{ident}">{html.escape(label)}</label>{control}</div>'


def _metric(label: str, value: str) -> str:
    return f"<div><dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd></div>"


def _when(timestamp: str) -> str:
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _model_section(model: CompiledModel | None, report: Report | None) -> str:
    if model is None:
        return (
            '<p class="notice">The model is not loaded yet (or failed to load): '
            'see <a href="/api/v1/ready">/api/v1/ready</a>.</p>'
        )
    manifest = model.manifest
    cv = manifest["metrics"]["cross_validation"]
    data = manifest["training_data"]
    items = [
        _metric("Version", str(manifest["version"])),
        _metric(
            f"RMSLE, {cv['repeats']:.0f} x {cv['folds']:.0f}-fold nested CV",
            f"{cv['rmsle_mean']:.4f} ± {cv['rmsle_std']:.4f}",
        ),
        _metric("RMSE, CV", f"${cv['rmse_mean']:,.0f}"),
        _metric("MAE, CV", f"${cv['mae_mean']:,.0f}"),
        _metric("R², CV", f"{cv['r2_mean']:.3f}"),
    ]
    if "baselines" in manifest and "slices" in manifest:
        versus, worst = manifest["baselines"], manifest["slices"]["worst"]
        best = versus["best"]
        items += [
            _metric(
                f"Best baseline ({best.replace('_', ' ')})",
                f"RMSLE {versus['models'][best]['rmsle_mean']:.4f}",
            ),
            _metric(
                f"Worst slice ({worst['slice']} {worst['label']}, {worst['houses']} houses)",
                f"RMSLE {worst['rmsle']:.4f}",
            ),
        ]
    items += [
        _metric(
            f"{level['coverage']:.0%} price range, CV",
            f"held {level['cv_coverage']:.1%} of prices, "
            f"median width ${level['median_width']:,.0f}",
        )
        for level in manifest.get("intervals", {}).get("levels", [])
    ]
    items += [
        _metric("Trained on", f"{data['rows_used']} houses ({data['file']})"),
        _metric("Trained at", _when(str(manifest["trained_at"]))),
        _metric("Model tables sha256", str(manifest["tables"]["sha256"])[:16] + "…"),
    ]
    section = f'<dl class="metrics">{"".join(items)}</dl>'
    if report is None:
        return section + (
            '<p class="muted">No report was written for this model '
            "(<code>regression-model report</code>).</p>"
        )
    links = " · ".join(
        f'<a href="{REPORT_PATH}{html.escape(plot.name)}">{html.escape(plot.title)}</a>'
        for plot in report.plots.values()
    )
    return section + (
        f'<p class="report-links"><a href="{REPORT_PATH}" id="report-link">The model report</a>'
        f" (evaluation, baselines, slices) and its plots: {links}</p>"
    )


_CARD_NEEDS_KEY = (
    '<p class="notice">On this server the model card needs the API key: '
    "<code>/api/v1/model</code> with the <code>X-API-Key</code> header.</p>"
)


def render_home_page(
    model: CompiledModel | None,
    *,
    api_key_required: bool,
    nonce: str,
    report: Report | None = None,
    show_model_card: bool = True,
) -> str:
    """The page; without ``show_model_card`` (the model card needs the key on
    this server) it leaves out the model's metrics and report links."""
    house = dict(example_houses()[0])
    categories: dict[str, list[str]] = {}
    if model is not None:
        categories = {
            feature["name"]: sorted(feature["categories"])
            for feature in model.manifest.get("features", [])
            if feature.get("categories")
        }
    fields = "\n".join(
        _control(name, label, house.get(name), categories) for name, label in KEY_FIELDS
    )
    api_key_field = (
        '<div><label for="api-key">API key (this server requires one)</label>'
        '<input id="api-key" name="api-key" type="password" autocomplete="off"></div>'
        if api_key_required
        else ""
    )
    base_house = json.dumps(house).replace("<", "\\u003c").replace(">", "\\u003e")
    return _template().substitute(
        nonce=html.escape(nonce),
        model_version=html.escape(model_version),
        api_version=html.escape(api_version),
        n_features=len(house_schema()["properties"]),
        model_section=_model_section(model, report) if show_model_card else _CARD_NEEDS_KEY,
        example_id=html.escape(str(house.get("Id", ""))),
        fields=fields,
        api_key_field=api_key_field,
        base_house=base_house,
    )
