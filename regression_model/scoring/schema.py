"""The input schema: every input variable's rule, the field names a client
may send for it (the model's, Kaggle's raw one, the aliases in
``config.yml``), and the same schema as a pydantic model for documentation
(OpenAPI) and typed clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from regression_model.config.core import ModelConfig, get_config
from regression_model.scoring.rules import FieldRule, is_missing
from regression_model.scoring.unknown_fields import UnknownFieldMessages, shown_name


class Schema:
    """The rules of every input variable, derived once from a config, and the
    field names a client may send."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.numerical = [FieldRule(name, config) for name in config.numerical_vars]
        self.categorical = [FieldRule(name, config) for name in config.categorical_vars]
        self.rules = [*self.numerical, *self.categorical]
        #: Every field name a client may send, and what it is: the model's name
        #: of the variable it carries, or the id column (a house's key, which
        #: is not an input).
        self.variable_of: dict[str, str] = {
            source: rule.name for rule in self.rules for source in rule.sources
        }
        self.variable_of[config.id_column] = config.id_column
        self.known_fields = frozenset(self.variable_of)
        #: Each name's place among its variable's names (0: the model's own).
        self._preference = {
            source: place for rule in self.rules for place, source in enumerate(rule.sources)
        }
        self._preference[config.id_column] = 0
        #: Per rule, what checking a row value by value reads, unpacked at once
        #: (the row driver's loop runs 79 times a house): its position, its
        #: names (the model's, then the others in order of preference), its
        #: check and the labels it has accepted.
        self.row_plan = [
            (position, rule.name, rule.sources[1:], rule.check, rule.known_labels)
            for position, rule in enumerate(self.rules)
        ]
        #: The variables a client may name in more than one way: position, names.
        self.synonyms = [(p, r.sources) for p, r in enumerate(self.rules) if len(r.sources) > 1]
        #: What a caller is told about the fields that are none of these.
        self.unknown = UnknownFieldMessages(self.variable_of, config.target)

    def given_twice(self, house: Mapping[Any, Any]) -> list[tuple[int, list[str]]]:
        """Each variable ``house`` gives a value for under two or more of its
        names (a row to refuse, whichever value was meant): its position and
        those names, in the order sent."""
        found = []
        for position, sources in self.synonyms:
            names = [name for name in sources if not is_missing(house.get(name))]
            if len(names) > 1:
                sent = [name for name in house if name in names]
                found.append((position, sent if len(sent) == len(names) else names))
        return found

    def unknown_fields(self, fields: Iterable[object]) -> list[object]:
        """The names among ``fields`` that are neither inputs nor the id column."""
        return [field for field in fields if field not in self.known_fields]

    def model_fields(self, house: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
        """A house's fields under the model's names (the first of a variable's
        names that is given, as validation reads it; and the id column), and
        the names of the fields the model does not know, as sent."""
        # One pass over what was sent (a house sends few of the 85 names).
        fields: dict[str, Any] = {}
        places: dict[str, int] = {}
        unknown: list[str] = []
        for field, value in house.items():
            variable = self.variable_of.get(field)
            if variable is None:
                unknown.append(shown_name(field))
            elif not is_missing(value):
                place = self._preference[field]
                if places.get(variable, place + 1) > place:
                    fields[variable], places[variable] = value, place
        return fields, unknown


def given_twice_message(names: Sequence[str]) -> str:
    """Why a row naming one field under several names is refused."""
    times = "twice" if len(names) == 2 else f"{len(names)} times"
    return (
        f"given {times}, as {', '.join(names[:-1])} and {names[-1]} (names of the same "
        "field): send one"
    )


_schemas: dict[int, Schema] = {}


def schema_for(config: ModelConfig) -> Schema:
    """The (cached) schema of a config."""
    key = id(config)
    schema = _schemas.get(key)
    if schema is None or schema.config is not config:
        schema = _schemas[key] = Schema(config)
    return schema


def model_fields(
    house: Mapping[Any, Any], config: ModelConfig | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A house's fields under the model's names (aliases resolved, as
    validation reads them; plus the id column), and the names of the fields
    the model does not know, as sent: what the prediction log keeps."""
    return schema_for(config or get_config().model).model_fields(house)


#: A label with at least one character that ``str.strip`` keeps, as a regular
#: expression that JSON Schema, Python and Rust read alike (every character
#: Python calls whitespace, listed): the documented form of "not empty".
LABEL_PATTERN = (
    "[^" + "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x10000)) if c.isspace()) + "]"
)


def _field_description(rule: FieldRule) -> dict[str, Any]:
    """A rule as pydantic's annotation and constraints of its field."""
    if rule.numerical:
        return {
            "annotation": (int if rule.integer else float) | None,
            "ge": rule.low,
            "le": rule.high,
        }
    codes = rule.codes if rule.codes is not None else rule.quality_codes
    if codes is not None:
        return {"annotation": Literal[tuple(codes)] | None}
    return {
        "annotation": str | None,
        "min_length": 1,
        "max_length": rule.max_length,
        "pattern": LABEL_PATTERN,
    }


def house_input_model(config: ModelConfig | None = None) -> type[BaseModel]:
    """A pydantic model describing one house, generated from the same rules
    as :func:`~regression_model.scoring.validation.validate_inputs` — for
    documentation (OpenAPI) and typed clients. Every field is optional;
    Kaggle's raw names are the aliases."""
    config = config or get_config().model
    rules = {rule.name: rule for rule in schema_for(config).rules}
    fields: dict[str, Any] = {}
    for name in config.features:  # in the config's order, as the published schema lists them
        rule = rules[name]
        spec = _field_description(rule)
        annotation = spec.pop("annotation")
        alias = rule.raw_names[-1] if rule.raw_names else None
        fields[name] = (annotation, Field(default=None, alias=alias, **spec))
    return create_model(
        "HouseInput",
        __config__=ConfigDict(populate_by_name=True, extra="ignore"),
        **fields,
    )
