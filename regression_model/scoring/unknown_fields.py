"""Fields that are not model inputs: never dropped silently.

Such a field is named back as ignored, with the known name it is closest to
(``GrLivArae``: did you mean GrLivArea?), or, in strict mode, refused like a
bad value. The cost stays bounded whatever a client sends: suggestions for
the first few distinct names of a batch only, huge names shortened.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: Unknown names longer than this get no suggestion (the matcher's cost grows
#: with the name), and a batch gets suggestions for this many distinct unknown
#: names at most: a body of thousands of made-up keys costs microseconds each.
_SUGGEST_MAX_LENGTH = 64
_SUGGEST_MAX_NAMES = 32
#: Messages remembered for unknown names (bounded: made-up names cannot grow it).
_IGNORED_MESSAGES_MAX = 1024

#: Unknown field names are named back up to this many characters (a made-up
#: name of 100 kB is not echoed whole).
_SHOWN_NAME_MAX = 100
#: A row's (or a frame's) unknown fields are named one by one up to this
#: many; the rest are counted in one more entry (:func:`more_fields`). A
#: house of 300,000 made-up keys costs what 20 do, and its answer stays small.
NAMED_FIELDS_MAX = 20


@dataclass(frozen=True)
class IgnoredField:
    """A field that is not a model input, named back to the caller.

    ``row`` is ``None`` when the field is a column of a frame or file, and so
    of every row."""

    row: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shown_name(field: object) -> str:
    """A field name as it is named back to the caller: as sent, unless huge."""
    text = str(field)
    return text if len(text) <= _SHOWN_NAME_MAX else text[: _SHOWN_NAME_MAX - 3] + "..."


def _folded(name: str) -> str:
    """A name without case and separators: grlivarea, Gr_Liv_Area and GRLIVAREA
    all mean GrLivArea."""
    return re.sub(r"[\W_]+", "", name).lower()


class UnknownFieldMessages:
    """What a caller is told about a field the model does not know, given the
    names it does know (``known``) and the target, which is no input."""

    def __init__(self, known: Iterable[str], target: str) -> None:
        self.target = target
        self._by_folded = {_folded(name): name for name in known}
        self._messages: dict[tuple[object, bool], str] = {}

    def suggestion(self, field: str) -> str | None:
        """The known name ``field`` is most likely a misspelling of, if any."""
        if len(field) > _SUGGEST_MAX_LENGTH:
            return None
        folded = _folded(field)
        if folded in self._by_folded:
            return self._by_folded[folded]
        close = difflib.get_close_matches(folded, self._by_folded, n=1, cutoff=0.8)
        return self._by_folded[close[0]] if close else None

    def ignored_message(self, field: object, *, strict: bool, suggest: bool = True) -> str:
        """The message about ``field``: ignored, or refused when ``strict``."""
        message = self._messages.get((field, strict))
        if message is not None:
            return message
        what = "unknown field, refused (strict mode)" if strict else "unknown field, ignored"
        if field == self.target:
            what += ": the sale price is what the model predicts, not an input"
        closest = self.suggestion(str(field)) if suggest else None
        message = f"{what} — did you mean {closest}?" if closest else what
        if suggest and len(self._messages) < _IGNORED_MESSAGES_MAX:
            self._messages[(field, strict)] = message
        return message


class BatchMessages:
    """The messages about unknown fields for one batch: suggestions for the
    first ``_SUGGEST_MAX_NAMES`` distinct names, plain messages after that."""

    def __init__(self, messages: UnknownFieldMessages, strict: bool) -> None:
        self.messages, self.strict = messages, strict
        self.seen: set[object] = set()

    def message(self, field: object) -> str:
        if field not in self.seen and len(self.seen) < _SUGGEST_MAX_NAMES:
            self.seen.add(field)
        return self.messages.ignored_message(field, strict=self.strict, suggest=field in self.seen)


def more_fields(count: int, *, strict: bool) -> str:
    """The entry counting the unknown fields of a row beyond ``NAMED_FIELDS_MAX``."""
    what = "refused (strict mode)" if strict else "ignored"
    return (
        f"{count:,} more fields the model does not know, {what}: only the first "
        f"{NAMED_FIELDS_MAX} are named"
    )
