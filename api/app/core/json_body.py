"""Strict JSON request bodies.

Python's ``json`` accepts things that are not JSON (``NaN``, ``Infinity``),
turns 5000-digit integers into a ``ValueError`` and deep nesting into a
``RecursionError``. Here every one of those becomes a 4xx in the API's error
shape, naming the house and field where it can:

- ``NaN`` / ``Infinity`` / ``-Infinity`` literals: 422, with the row and field
  of each (send ``null`` for an unknown value);
- nesting deeper than ``MAX_JSON_DEPTH``: 422, checked before parsing;
- integers too long for any feature: the package reports them out of range
  (or not finite) for that house alone (integers of over 4300 digits, which
  Python will not read, are parsed as floats);
- strings (values or field names) with a lone UTF-16 surrogate escape
  (``"\\ud800"``, valid JSON syntax but not Unicode text, which nothing
  downstream can encode): 422, with the row and field;
- a key repeated within one object (``{"GrLivArea": 1000, "GrLivArea": -5}``,
  which both parsers would read as -5): 422, with the row and field
  (:mod:`api.app.core.json_keys`);
- bodies that are not UTF-8: 422; a content type other than JSON, or a
  compressed body (``Content-Encoding``): 415.

:class:`StrictJSONRoute` makes FastAPI read bodies through this parser.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import numpy as np
from fastapi import Request, Response
from pydantic_core import from_json

from api.app.core.exceptions import BODY, ROW_ARRAYS, RequestRejected, request_error
from api.app.core.json_keys import check_unique_keys
from api.app.core.offload import run_cpu_bound
from api.app.core.query_params import QueryCheckedRoute
from api.app.core.security import check_api_key, key_requirement
from api.app.schemas import ErrorDetail

#: Bodies larger than this are parsed in the threadpool, off the event loop.
_PARSE_INLINE_BYTES = 64 * 1024
#: Bodies up to this size are parsed by pydantic-core. It holds the GIL from
#: start to end (about 6 ms a MB here), so even in the threadpool it would stop
#: the event loop for that long; json's parser, which calls back into Python
#: for every integer, lets the loop in every few milliseconds.
_FAST_PARSE_MAX_BYTES = 1024 * 1024
#: Integers with more digits than this are parsed as floats (no feature needs them).
_MAX_INT_DIGITS = 18
#: How many literal locations a NaN/Infinity error lists at most.
_MAX_REPORTED = 50

#: A \uD800-\uDFFF escape: only bodies containing one are searched for lone
#: surrogates (a valid pair decodes to one character, so finds nothing).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class _NonFinite:
    """Stands in for a ``NaN``/``Infinity`` literal until it is reported."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


#: JSON type names of parsed values, most specific first (bool is an int).
def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (0 for a scalar), counted
    on the bytes with strings removed: linear time, no recursion."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _parse_int(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else float(text)


def _locations(
    value: Any, is_bad: Callable[[Any], bool], path: tuple[Any, ...] = ()
) -> Iterator[tuple[Any, ...]]:
    """Paths to every value, or object key, that ``is_bad`` (depth is bounded,
    so recursion is safe)."""
    if is_bad(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if is_bad(key):
                yield (*path, key)
            else:
                yield from _locations(item, is_bad, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _locations(item, is_bad, (*path, index))


def _printable(part: Any) -> str:
    """A path part as text the response can carry (lone surrogates escaped)."""
    return str(part).encode("utf-8", "backslashreplace").decode("utf-8")


def _error_at(path: tuple[Any, ...], message: str) -> ErrorDetail:
    """The error for the value at ``path``: its row (house or outcome) and
    field when it is in one."""
    if len(path) >= 3 and path[0] in ROW_ARRAYS and isinstance(path[1], int):
        return ErrorDetail(row=path[1], field=_printable(path[2]), message=message)
    field = ".".join(_printable(part) for part in path) or BODY
    return ErrorDetail(row=None, field=field, message=message)


def _has_lone_surrogate(value: Any) -> bool:
    return isinstance(value, str) and _SURROGATE.search(value) is not None


def _errors_at(
    paths: Iterator[tuple[Any, ...]], message: Callable[[tuple[Any, ...]], str]
) -> list[ErrorDetail]:
    """An error for each path, the first ``_MAX_REPORTED`` of them."""
    return [_error_at(path, message(path)) for path in itertools.islice(paths, _MAX_REPORTED)]


_CONTAINERS = (dict, list)
_CONTAINER_SET = frozenset(_CONTAINERS)


def value_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed value (0 for a scalar),
    without recursion."""
    deepest = 0
    pending = [(value, 1)] if isinstance(value, _CONTAINERS) else []
    while pending:
        container, level = pending.pop()
        deepest = max(deepest, level)
        items = container.values() if type(container) is dict else container
        # A house holds scalars: one pass in C (a parser makes plain dicts
        # and lists) tells, before looking at each item in Python.
        if not _CONTAINER_SET.isdisjoint(map(type, items)):
            pending += [(item, level + 1) for item in items if isinstance(item, _CONTAINERS)]
    return deepest


def _check_depth(depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise request_error(
            422, BODY, f"JSON nested {depth} levels deep; at most {max_depth} are accepted"
        )


def parse_json_body(body: bytes, max_depth: int) -> Any:
    """Parse a request body as strict JSON, or raise :class:`RequestRejected` (422)."""
    value = _parse(body, max_depth)
    check_unique_keys(body, value, _parse_int, _error_at)
    return value


def _parse(body: bytes, max_depth: int) -> Any:
    # Nesting cannot be deeper than the number of opening brackets, which
    # bytes.count gives in microseconds: the exact depth is computed only when
    # that bound is over the limit.
    bound = body.count(b"[") + body.count(b"{")
    if len(body) > _FAST_PARSE_MAX_BYTES:
        return _parse_strictly(body, max_depth, bound)
    try:
        # A valid body, the usual case: pydantic-core's parser, three times as
        # fast as json's here and giving the same values (floats correctly
        # rounded, to the bit; the last of repeated keys). It refuses what is
        # not JSON, NaN and Infinity, lone surrogates, a BOM, bytes that are
        # not UTF-8, integers of over 4300 digits and nesting over 200 levels:
        # those are parsed by _parse_strictly, to say precisely what is wrong
        # or, for a long integer, to read it.
        value = from_json(body, allow_inf_nan=False)
    except ValueError:
        return _parse_strictly(body, max_depth, bound)
    # Measured on the parsed value, not on the bytes: json_depth's regex holds
    # the GIL, and so stalled the event loop, for half a second per 17 MB.
    if bound > max_depth:
        _check_depth(value_depth(value), max_depth)
    return value


def _parse_strictly(body: bytes, max_depth: int, bound: int) -> Any:
    """Python's json parser, strictly: for bodies pydantic-core refused, and
    for large ones. The depth is checked first; a large body's is measured on
    the parsed value unless it cannot be parsed (json_depth's regex holds the
    GIL, and so would stall the event loop, for half a second per 17 MB)."""
    large = len(body) > _PARSE_INLINE_BYTES
    if bound > max_depth and not large:
        _check_depth(json_depth(body), max_depth)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise request_error(
            422, BODY, f"the body is not UTF-8 (byte {exc.start}): JSON must be UTF-8"
        ) from None
    found: list[_NonFinite] = []

    def non_finite(literal: str) -> _NonFinite:
        marker = _NonFinite(literal)
        found.append(marker)
        return marker

    try:
        value = json.loads(text, parse_constant=non_finite, parse_int=_parse_int)
    except (ValueError, RecursionError) as exc:  # e.g. a number float() cannot read
        if large and bound > max_depth:
            _check_depth(json_depth(body), max_depth)
        if isinstance(exc, json.JSONDecodeError):
            message = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        else:
            message = f"invalid JSON: {exc}"
        raise request_error(422, BODY, message) from None
    if large and bound > max_depth:
        _check_depth(value_depth(value), max_depth)
    if found:
        raise RequestRejected(
            422,
            _errors_at(
                _locations(value, lambda item: isinstance(item, _NonFinite)),
                lambda path: (
                    f"{_lookup(value, path).literal} is not valid JSON (RFC 8259 has no "
                    "NaN or Infinity): send null for an unknown value"
                ),
            ),
        )
    if _SURROGATE_ESCAPE.search(body) and (
        lone := _errors_at(
            _locations(value, _has_lone_surrogate),
            lambda path: (
                "the text (or the field name) has a lone UTF-16 surrogate escape, "
                "\\uD800 to \\uDFFF without its pair, which is no Unicode character: send "
                "UTF-8 text or a surrogate pair"
            ),
        )
    ):
        raise RequestRejected(422, lone)
    return value


def _lookup(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _shown(header: str | None) -> str:
    """A header's value as quoted in an error: at most 60 characters of it."""
    text = header or ""
    return text if len(text) <= 60 else text[:57] + "..."


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`parse_json_body` (large bodies in
    the threadpool)."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            body = await self.body()
            max_depth: int = self.app.state.settings.max_json_depth
            began = time.perf_counter()
            if len(body) > _PARSE_INLINE_BYTES:
                self._strict_json = await run_cpu_bound(parse_json_body, body, max_depth)
            else:
                self._strict_json = parse_json_body(body, max_depth)
            # The stage timing for metrics and Server-Timing (see metrics.py).
            state = self.scope.setdefault("state", {})
            state.setdefault("timings", {})["parse"] = time.perf_counter() - began
        return self._strict_json


class StrictJSONRoute(QueryCheckedRoute):
    """Routes whose JSON bodies are parsed strictly and must say they are JSON,
    and whose API key (``dependencies=[requires_key(...)]``) is checked before
    the body is read: FastAPI resolves dependencies only after reading and
    parsing it, so a client without the key could make the server parse
    megabytes. The key dependency is therefore taken out of ``dependencies``
    (FastAPI would check it a second time, after the body) and checked here;
    the access policy (``security.route_access``) and the OpenAPI document
    read it from ``key_requirement``. As a :class:`QueryCheckedRoute`, it
    refuses undeclared or repeated query parameters before the body too."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        declared = list(kwargs.get("dependencies") or ())
        self.key_requirement = key_requirement(declared)
        kwargs["dependencies"] = [
            dependency
            for dependency in declared
            if self.key_requirement is None
            or getattr(dependency, "dependency", None) is not self.key_requirement
        ]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None
        requirement = self.key_requirement

        async def strict_handler(request: Request) -> Response:
            if requirement is not None:
                # Before the body is read (BodyLimitMiddleware drains or
                # closes what is left unread when the 401 goes out).
                check_api_key(request, requirement.access)
            if takes_body and not _is_json_media_type(request.headers.get("content-type")):
                raise request_error(
                    415,
                    "Content-Type",
                    "send the body as JSON with the header Content-Type: application/json "
                    f"(got {_shown(request.headers.get('content-type')) or 'none'})",
                )
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if takes_body and encoding not in ("", "identity"):
                raise request_error(
                    415,
                    "Content-Encoding",
                    f"compressed bodies are not accepted (got {_shown(encoding)}): send the JSON "
                    "uncompressed",
                )
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
