"""The OpenAPI document: FastAPI's, plus request examples that are real
houses from test.csv (built on first request of the schema, not on import)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api import __version__ as api_version
from api.app.core.security import (
    SECURITY_REQUIREMENT,
    SECURITY_SCHEMES,
    key_required,
    route_access,
)
from api.app.examples import example_houses
from api.app.model_service import ModelService, ModelState
from api.app.routes.predict import COVERAGE
from regression_model import CompiledModel, get_config
from regression_model import __version__ as model_version

DESCRIPTION = f"""
Prices houses in Ames, Iowa with the `regression_model` package (model version
{model_version}).

**Houses** are JSON objects with the columns of Kaggle's `test.csv` (raw names
such as `1stFlrSF`; the Python names such as `FirstFlrSF` are accepted too).
Missing fields are imputed as in training. A field the model does not know is
never dropped silently: the house is priced without it and `warnings` names it,
with the known field it is closest to (`"GrLivArae": unknown field, ignored — did
you mean GrLivArea?`); with `?strict=true` (or the server's `STRICT_FIELDS`) it
is an error of that house instead. The course API's spelling `ThreeSsnPortch`
is accepted as `3SsnPorch`.

**Price ranges**: each priced house gets, in `intervals`, its price's range
at each coverage the model was calibrated for (conformal prediction
intervals: at 80 %, four houses like it in five sell within it, as measured in
cross-validation); `?coverage=0.9` asks for that range only.

**Errors** always come as `{{"row", "field", "message"}}` items in `errors`:
`row` is the house's position in `inputs` (null for errors about the request),
`field` names the input field (`*` for a whole house) or the part of the
request (`body`, `inputs`, `Content-Type`, `X-API-Key`). A batch in which some
houses are invalid answers 200 with the others priced; a request in which no
house can be priced, or whose body is malformed, answers 422; bodies or
batches over the configured limits answer 413. No client input produces a 5xx.
"""


def _examples() -> dict[str, dict[str, Any]]:
    houses = [dict(house) for house in example_houses()]
    renamed = get_config().model.variables_to_rename
    python_names = {renamed.get(key, key): value for key, value in houses[0].items()}
    few = ("Neighborhood", "OverallQual", "GrLivArea", "YearBuilt", "GarageCars")
    bad = {**houses[1], "OverallQual": 11, "KitchenQual": "Excellent"}
    return {
        "one_house": {
            "summary": "One house (the first of test.csv)",
            "value": {"inputs": houses[:1]},
        },
        "batch": {
            "summary": f"A batch of {len(houses)} houses from test.csv",
            "value": {"inputs": houses},
        },
        "mixed_batch": {
            "summary": "A batch with an invalid house (200: the valid one is priced)",
            "value": {"inputs": [houses[0], bad]},
        },
        "python_names": {
            "summary": "A house with the Python-safe field names",
            "value": {"inputs": [python_names]},
        },
        "misspelled_field": {
            "summary": "A misspelled field (priced without it; named in warnings)",
            "value": {"inputs": [{"Neighborhood": "NAmes", "OverallQual": 5, "GrLivArae": 896}]},
        },
        "minimal": {
            "summary": "A few fields only (the rest is imputed)",
            "value": {"inputs": [{key: houses[0][key] for key in few if key in houses[0]}]},
        },
    }


def _document_coverages(operation: dict[str, Any]) -> None:
    """The ``coverage`` values a request may ask for: the config's, which
    the served model was trained with (its manifest's config hash is checked
    at load). Listed as the parameter's ``enum`` but checked by the package,
    so another value gets the package's message naming them."""
    coverages = get_config().model.intervals.coverages
    parameter = next(p for p in operation["parameters"] if p["name"] == COVERAGE)
    array = next(branch for branch in parameter["schema"]["anyOf"] if branch["type"] == "array")
    array["items"]["enum"] = list(coverages)


def _answer_examples(model: CompiledModel) -> dict[str, dict[str, Any]]:
    """The model's answers to the first request example, with all the price
    ranges and with one coverage: real prices and ranges, not made up."""
    house = dict(example_houses()[0])
    highest = model.coverages[-1]
    return {
        "one_house": {
            "summary": "One house priced, with its ranges (the first of test.csv)",
            "value": model.predict([house]),
        },
        "one_coverage": {
            "summary": f"The same house with ?coverage={highest}",
            "value": model.predict([house], coverages=[highest]),
        },
    }


def _document_access(schema: dict[str, Any], app: FastAPI) -> None:
    """The key requirement, and its 401, on each operation that needs the key
    on this server (security.py's policy with its settings); none elsewhere."""
    settings = app.state.settings
    keyed = False
    # iter_route_contexts: included routers are one entry each in app.routes.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        if not key_required(settings, route_access(route)):
            continue
        keyed = True
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            operation["security"] = SECURITY_REQUIREMENT
            operation["responses"].setdefault(
                "401",
                {
                    "description": "API_KEY is set and X-API-Key is missing or wrong",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                },
            )
    if keyed:
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(
            SECURITY_SCHEMES
        )


def install_openapi(app: FastAPI) -> None:
    """Serve the schema with examples (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=api_version,
                description=DESCRIPTION,
                routes=app.routes,
                tags=[
                    {"name": "predictions", "description": "price houses"},
                    {"name": "model", "description": "what the model is"},
                    {"name": "operations", "description": "liveness and readiness"},
                ],
            )
            operation = schema["paths"]["/api/v1/predict"]["post"]
            operation["requestBody"]["content"]["application/json"]["examples"] = _examples()
            _document_coverages(operation)
            _document_access(schema, app)
            service: ModelService = app.state.model_service
            if service.model is not None:
                answer = operation["responses"]["200"]["content"]["application/json"]
                answer["examples"] = _answer_examples(service.model)
            if service.state is ModelState.LOADING:
                return schema  # built again, with the answers, once the model is loaded
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
