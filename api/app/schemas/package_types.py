"""The response models that document one of the package's result types.

The service answers with what the package returns (``Model.predict``'s
``PredictionResult``, its explanations, its errors and warnings), serialised
as it is; the pydantic models here only describe it, for the OpenAPI
document. Each names the type it describes with :func:`documents`, which
checks, when the model is defined (at import), that both have the same
fields in the same order, optional in both or in neither: a field the
package adds, renames or drops stops the service from starting until its
description here says the same.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def fields_of(shape: type) -> list[tuple[str, bool]]:
    """(name, required) of each field of a TypedDict or a dataclass, in order."""
    if dataclasses.is_dataclass(shape):
        return [
            (
                field.name,
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING,
            )
            for field in dataclasses.fields(shape)
        ]
    if typing.is_typeddict(shape):
        # From the annotations: ``__optional_keys__`` misses a NotRequired
        # written as a string (the package's modules postpone annotations).
        hints = typing.get_type_hints(shape, include_extras=True)
        total: bool = shape.__total__  # type: ignore[attr-defined]
        marked = {typing.NotRequired: False, typing.Required: True}
        return [(name, marked.get(typing.get_origin(hint), total)) for name, hint in hints.items()]
    raise TypeError(f"{shape.__qualname__} is neither a TypedDict nor a dataclass")


def documents(shape: type) -> Callable[[type[ModelT]], type[ModelT]]:
    """Mark a model as the description of the package's type ``shape``
    (a TypedDict or a dataclass); TypeError when their fields differ."""

    def check(model: type[ModelT]) -> type[ModelT]:
        described = [(name, field.is_required()) for name, field in model.model_fields.items()]
        expected = fields_of(shape)
        if described != expected:
            raise TypeError(
                f"{model.__qualname__} describes {shape.__module__}.{shape.__qualname__}, "
                f"whose fields (name, required) are {expected}, not {described}"
            )
        return model

    return check
