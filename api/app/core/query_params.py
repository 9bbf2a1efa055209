"""Query parameters: a route refuses those it does not declare, and those
given twice that take one value.

Without this, FastAPI ignores a parameter no route declares
(``?explian=true`` priced the house without explanations, answered 200) and
keeps the last of a repeated one (``?since=7d&since=30d``). Each is now a
422 in the API's error shape, naming the parameter: an unknown one with the
parameters the endpoint takes and the one it is closest to, if any; a
repeated one with the number of times it was given. A parameter declared as
a list (``coverage``) may be repeated.

:class:`QueryCheckedRoute` does this for every route of the API (the routers
declare it as their ``route_class``; ``main.py`` turns the routes FastAPI and
fastapi-offline add themselves into ones): what a route declares is read from
its dependant, once, when the route is made. A request without a query
string costs nothing more; one with only known parameters, a set comparison
on what Starlette parsed for FastAPI anyway.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Coroutine, Sequence, Set
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from api.app.core.exceptions import RequestRejected
from api.app.core.security import check_api_key, route_access
from api.app.schemas import ErrorDetail
from regression_model import shown_name

#: At most this many refused parameters are named in one answer.
_MAX_REPORTED = 20
#: Names longer than this get no suggestion (difflib's cost grows with them).
_SUGGEST_MAX_LENGTH = 64
_SEQUENCES = (list, tuple, set, frozenset, Sequence, Set)


@dataclass(frozen=True)
class QueryParameters:
    """What a route takes in its query string."""

    names: frozenset[str]
    #: Those declared as lists: they may be given more than once.
    repeatable: frozenset[str]

    def errors(self, given: Sequence[tuple[str, str]]) -> list[ErrorDetail]:
        """One error per parameter in ``given`` (the query's name-value pairs,
        in order) that is unknown, or repeated and not a list."""
        counts: dict[str, int] = {}
        for name, _ in given:
            counts[name] = counts.get(name, 0) + 1
        errors = [
            ErrorDetail(row=None, field=shown_name(name), message=self._message(name, count))
            for name, count in counts.items()
            if name not in self.names or (count > 1 and name not in self.repeatable)
        ]
        return errors[:_MAX_REPORTED]

    def _message(self, name: str, count: int) -> str:
        if name in self.names:
            return (
                f"given {'twice' if count == 2 else f'{count} times'}: {shown_name(name)} "
                "takes one value, send it once"
            )
        if not self.names:
            return "not a parameter of this endpoint, refused: it takes no query parameters"
        close = self._closest(name)
        guess = "" if close is None else f" (did you mean {close}?)"
        return f"not a parameter of this endpoint, refused{guess}: it takes " + ", ".join(
            sorted(self.names)
        )

    def _closest(self, name: str) -> str | None:
        if len(name) > _SUGGEST_MAX_LENGTH:
            return None
        by_folded = {known.lower(): known for known in self.names}
        if name.lower() in by_folded:
            return by_folded[name.lower()]
        close = difflib.get_close_matches(name.lower(), by_folded, n=1, cutoff=0.6)
        return by_folded[close[0]] if close else None


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter annotated so takes a list (``list[float] | None``)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType) or origin is Annotated:
        return any(_takes_many(arg) for arg in get_args(annotation))
    kind = origin or annotation
    return isinstance(kind, type) and issubclass(kind, _SEQUENCES) and kind is not str


def _model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a query parameter is made of (``Annotated[Filters, Query()]``)."""
    candidates = get_args(annotation) if get_origin(annotation) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def query_parameters(dependant: Dependant) -> QueryParameters:
    """The query parameters a route's dependant (its dependencies' included) declares."""
    names: set[str] = set()
    repeatable: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        pending += current.dependencies
        for field in current.query_params:
            annotation = field.field_info.annotation
            model = _model(annotation)
            declared = (
                [(field.alias, annotation)]
                if model is None
                else [(f.alias or name, f.annotation) for name, f in model.model_fields.items()]
            )
            for name, kind in declared:
                names.add(name)
                if _takes_many(kind):
                    repeatable.add(name)
    return QueryParameters(frozenset(names), frozenset(repeatable))


class QueryCheckedRoute(APIRoute):
    """A route that refuses query parameters it does not declare, and
    repeated ones that take one value (422), before its body is read.

    The API key, where the route needs one, is checked first: a client
    without it learns nothing of the parameters."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        parameters = query_parameters(self.dependant)
        names = parameters.names

        async def checked_handler(request: Request) -> Response:
            if request.scope["query_string"]:
                given = request.query_params  # parsed once, for FastAPI too
                if not given.keys() <= names or len(given) != len(given.multi_items()):
                    errors = parameters.errors(given.multi_items())
                    if errors:
                        check_api_key(request, route_access(self))
                        raise RequestRejected(422, errors)
            return await handler(request)

        return checked_handler


def query_checked(route: BaseRoute) -> BaseRoute:
    """``route`` as a :class:`QueryCheckedRoute`, when it is an endpoint made
    by FastAPI or Starlette (the docs pages, the OpenAPI document); any other
    route (a mount, an included router, a route already checked) as it is."""
    if isinstance(route, QueryCheckedRoute) or type(route) not in (APIRoute, Route):
        return route
    assert isinstance(route, Route)
    return QueryCheckedRoute(
        route.path,
        route.endpoint,
        methods=sorted((route.methods or {"GET"}) - {"HEAD"}),
        name=route.name,
        include_in_schema=False,
        dependencies=getattr(route, "dependencies", None),
    )
