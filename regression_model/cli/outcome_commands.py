"""``regression-model outcomes import FILE``: sale prices from a CSV file,
checked and stored like ``POST /api/v1/outcomes`` does (the rules:
:mod:`regression_model.monitoring.outcomes`).

The columns (a header line first):

- the house: ``key`` or the config's id column (``Id``), or ``request_id`` and
  ``row``; a line may fill either;
- the price: ``sale_price`` or the config's target (``SalePrice``), dollars;
- the day: ``sale_date`` (YYYY-MM-DD), else Kaggle's ``YrSold`` and
  ``MoSold``, read as the first day of that month (Kaggle gives no day).

Other columns are named once, as ignored (train.csv itself can be
imported). Cells are stripped of surrounding spaces; an empty cell is a
missing value. Lines are read and stored in chunks, a
transaction each: the good lines are stored, each bad one is reported with
its line number and field, and importing the file again after fixing it
stores only what is new (the same outcome twice is stored once).

A line with more fields than the header is refused (its line named); a
header naming a column twice, or a byte that is not UTF-8 (its line named),
refuses the file before anything is stored.

Exit status: 0 every line stored or already recorded; 3 some lines refused
(the others stored); 1 the file cannot be read as outcomes (nothing stored);
2 no log location, the ``[log]`` extra missing, or the database failed
(the chunks before the failure are stored).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regression_model.cli.log_access import database_url_argument, log_engine, log_url
from regression_model.config.core import get_config

#: Lines checked and stored per transaction.
CHUNK_LINES = 1000
#: At most this many refused lines are printed (all are counted).
MAX_PRINTED_ERRORS = 100
#: Kaggle's sale year and month, read as the first day of the month.
YEAR_SOLD, MONTH_SOLD = "YrSold", "MoSold"
_WHOLE = re.compile(r"-?[0-9]+")
_UNDECODED = re.compile("[\udc80-\udcff]")


def outcomes_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="outcomes_action", required=True, metavar="ACTION")
    importing = actions.add_parser(
        "import",
        help="store the sale prices of a CSV file",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importing.add_argument("file", type=Path, help="CSV file with a header line")
    database_url_argument(importing)


def outcomes(args: argparse.Namespace) -> int:
    return import_outcomes(args)


@dataclass(frozen=True)
class Columns:
    """Which column of the file gives each field of an outcome."""

    key: str | None
    request: tuple[str, str] | None
    price: str
    date: str | None
    ignored: list[str]


class FileError(ValueError):
    """The file cannot be read as outcomes (the message says why)."""


def _one_of(header: list[str], names: tuple[str, ...], what: str) -> str | None:
    present = [name for name in names if name in header]
    if len(present) > 1:
        raise FileError(f"both {' and '.join(present)} columns: keep one for the {what}")
    return present[0] if present else None


def columns_of(header: list[str]) -> Columns:
    """The columns of a file with this header, or :class:`FileError`."""
    from regression_model.monitoring.outcomes import KEY, REQUEST_ID, ROW, SALE_DATE, SALE_PRICE

    model = get_config().model
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise FileError(f"duplicated column names: {', '.join(duplicated)} (keep one of each)")
    key = _one_of(header, (KEY, model.id_column), "key")
    has_request = [name in header for name in (REQUEST_ID, ROW)]
    if any(has_request) and not all(has_request):
        raise FileError(f"a {REQUEST_ID} column needs a {ROW} column, and the other way round")
    request = (REQUEST_ID, ROW) if all(has_request) else None
    if key is None and request is None:
        raise FileError(
            f"no column says which house: {KEY} (or {model.id_column}), or {REQUEST_ID} and {ROW}"
        )
    price = _one_of(header, (SALE_PRICE, model.target), "sale price")
    if price is None:
        raise FileError(f"no sale price column: {SALE_PRICE} or {model.target}")
    date = SALE_DATE if SALE_DATE in header else None
    if date is None and not {YEAR_SOLD, MONTH_SOLD} <= set(header):
        raise FileError(f"no sale date: a {SALE_DATE} column, or {YEAR_SOLD} and {MONTH_SOLD}")
    used = {key, price, date, *(request or ())} | ({YEAR_SOLD, MONTH_SOLD} if not date else set())
    return Columns(key, request, price, date, [name for name in header if name not in used])


def _number(text: str) -> Any:
    """A cell as a number when it reads as one (the checks say what else is wrong)."""
    if _WHOLE.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def outcome_of(line: dict[str, str], columns: Columns) -> tuple[dict[str, Any], list[Any]]:
    """A line as an outcome (as a client would send it), and the problems of
    its YrSold/MoSold that no outcome field can carry: ``(field, message)``."""
    from regression_model.monitoring.outcomes import KEY, REQUEST_ID, ROW, SALE_DATE, SALE_PRICE

    cells = {name: (value or "").strip() for name, value in line.items() if name is not None}
    problems: list[Any] = []
    if None in line:  # csv.DictReader's restkey: the fields beyond the header's
        extra = len(line[None])  # type: ignore[index]
        problems.append(
            ("fields", f"{len(cells) + extra} fields where the header has {len(cells)} columns "
                       "(a separator too many, or a value that needs quotes)")
        )  # fmt: skip
    item: dict[str, Any] = {}
    if columns.key is not None and cells.get(columns.key):
        item[KEY] = cells[columns.key]
    if columns.request is not None:
        request_id, row = (cells.get(name) for name in columns.request)
        if request_id or row:
            item[REQUEST_ID], item[ROW] = request_id or None, _number(row) if row else None
    price = cells.get(columns.price)
    item[SALE_PRICE] = _number(price) if price else None
    if columns.date is not None:
        item[SALE_DATE] = cells.get(columns.date) or None
    else:
        year, month = cells.get(YEAR_SOLD, ""), cells.get(MONTH_SOLD, "")
        if _WHOLE.fullmatch(year) and _WHOLE.fullmatch(month) and 1 <= int(month) <= 12:
            item[SALE_DATE] = f"{int(year):04d}-{int(month):02d}-01"
        else:
            item[SALE_DATE] = ""  # refused below with the columns' own message
            problems.append(
                (f"{YEAR_SOLD}/{MONTH_SOLD}", f"{year!r}/{month!r} is no year and month (1-12)")
            )
    return item, problems


@dataclass
class Totals:
    lines: int = 0
    stored: int = 0
    already_recorded: int = 0
    refused_lines: set[int] = field(default_factory=set)
    unmatched: int = 0
    printed: int = 0

    def refuse(self, line: int, name: str, message: str) -> None:
        self.refused_lines.add(line)
        if self.printed < MAX_PRINTED_ERRORS:
            print(f"line {line}: {name}: {message}", file=sys.stderr)
        self.printed += 1


def check_utf8(path: Path) -> None:
    """A :class:`FileError` naming the first line that is not UTF-8, read
    before anything is stored (a bad byte found mid-file would leave the
    chunks before it stored). Only a regular file is read twice: a pipe or
    a terminal is read once, as it comes."""
    if not path.is_file():
        return
    # Undecodable bytes become lone surrogates (U+DC80..U+DCFF), found per
    # line; lines end as the csv module ends them (\n, \r\n or \r).
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if bad := _UNDECODED.search(line):
                raise FileError(
                    f"line {number}: not UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at "
                    f"character {bad.start() + 1} (save the file as UTF-8)"
                )


def _chunks(reader: csv.DictReader[str]) -> Iterator[list[tuple[int, dict[str, str]]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    for line in reader:
        chunk.append((reader.line_num, line))
        if len(chunk) == CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_outcomes(args: argparse.Namespace) -> int:
    url = log_url(args)
    if url is None:
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from regression_model.monitoring.log_store import migrate
    from regression_model.monitoring.outcomes import store_outcomes, validate_outcome

    model = get_config().model
    totals = Totals()
    try:
        check_utf8(args.file)
        with (
            open(args.file, newline="", encoding="utf-8-sig") as handle,
            log_engine(url) as engine,
        ):
            reader = csv.DictReader(handle)
            columns = columns_of(list(reader.fieldnames or []))
            if columns.ignored:
                shown = ", ".join(columns.ignored[:10])
                more = (
                    f" and {len(columns.ignored) - 10} more" if len(columns.ignored) > 10 else ""
                )
                print(f"columns ignored: {shown}{more}", file=sys.stderr)
            migrate(engine)
            for chunk in _chunks(reader):
                checked = []
                for number, line in chunk:
                    item, problems = outcome_of(line, columns)
                    outcome, found = validate_outcome(item, config=model)
                    for name, message in [*problems, *found]:
                        if not (problems and name == "sale_date"):  # said by YrSold/MoSold
                            totals.refuse(number, name, message)
                    if outcome is not None and not problems:
                        checked.append((number, outcome))
                result = store_outcomes(engine, checked)
                totals.lines += len(chunk)
                totals.stored += len(result.stored)
                totals.already_recorded += len(result.already_recorded)
                totals.unmatched += len(result.unmatched)
                for conflict in result.conflicts:
                    totals.refuse(conflict["row"], conflict["field"], conflict["message"])
    except FileNotFoundError as exc:
        print(f"error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    except (FileError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: {args.file}: {exc} (nothing stored)", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as exc:
        failed = f"the prediction log's database failed ({type(exc).__name__}: {exc})"
        print(f"error: {failed}; lines stored before: {totals.lines}", file=sys.stderr)
        return 2
    if totals.printed > MAX_PRINTED_ERRORS:
        print(f"... {totals.printed - MAX_PRINTED_ERRORS} more problems", file=sys.stderr)
    if totals.unmatched:
        print(f"warning: {totals.unmatched} outcomes quote a request and row that is no "
              "priced house of the log (stored all the same)", file=sys.stderr)  # fmt: skip
    print(
        f"{args.file}: {totals.lines} lines: {totals.stored} stored, {totals.already_recorded} "
        f"already recorded, {len(totals.refused_lines)} refused"
    )
    return 3 if totals.refused_lines else 0
