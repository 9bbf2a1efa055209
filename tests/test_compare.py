"""A challenger loaded by path (``load_challenger``: another version, verified
as strictly as the package's own model) and ``regression-model compare``'s
figures, checked against answers worked out by hand on a log whose
challenger prices are the champion's moved by known amounts. (The service
filling the log with a real challenger's prices: ``api/tests/test_shadow.py``.)
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic_core import to_json
from sqlalchemy import insert

from regression_model import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    challenger_label,
    load_challenger,
    load_model,
    model_fields,
)
from regression_model.cli import main
from regression_model.config.core import Config
from regression_model.monitoring.comparison import NoShadowPricesError, compare
from regression_model.monitoring.log_store import (
    create_log_engine,
    insert_records,
    migrate,
    outcomes,
    record_time,
    shadow_prices,
)
from regression_model.scoring.artifact import ArtifactPaths, seal_manifest, sha256_file

OTHER_VERSION = "0.3.0-challenger"


def _as_other_version(config: Config, folder: Path) -> Path:
    """The package's artifact rewritten as another model version: its tables
    and manifest say OTHER_VERSION, the manifest resealed."""
    source = ArtifactPaths.for_version(config, directory=load_model().directory)
    target = ArtifactPaths.for_version(config, OTHER_VERSION, folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = json.loads(source.tables.read_text())
    tables["version"] = OTHER_VERSION
    target.tables.write_text(json.dumps(tables))
    manifest = json.loads(source.manifest.read_text())
    manifest["version"] = OTHER_VERSION
    manifest["tables"] = {
        **manifest["tables"],
        "file": target.tables.name,
        "sha256": sha256_file(target.tables),
    }
    target.manifest.write_text(json.dumps(seal_manifest(manifest)))
    return folder


def test_a_challenger_of_another_version_loads_and_prices_like_its_tables(
    config: Config, tmp_path: Path, test_data: pd.DataFrame
) -> None:
    challenger = load_challenger(_as_other_version(config, tmp_path / "other"))
    champion = load_model()
    assert challenger.version == OTHER_VERSION
    assert challenger_label(challenger).startswith(f"{OTHER_VERSION}+")
    result = challenger.predict(test_data)
    assert result["version"] == OTHER_VERSION
    assert result["predictions"] == champion.predict(test_data)["predictions"]


def test_a_challenger_is_verified_like_the_package_model(config: Config, tmp_path: Path) -> None:
    folder = _as_other_version(config, tmp_path / "other")
    tables = next(folder.glob("*.tables.json"))
    tables.write_bytes(tables.read_bytes() + b" ")
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_challenger(folder)

    folder = _as_other_version(config, tmp_path / "edited")
    manifest = ArtifactPaths.for_version(config, OTHER_VERSION, folder).manifest
    manifest.write_text(manifest.read_text().replace(OTHER_VERSION, "0.9.9"))
    with pytest.raises(ArtifactIntegrityError, match="edited after training"):
        load_challenger(folder)


def test_a_challenger_directory_holds_one_version(config: Config, tmp_path: Path) -> None:
    folder = _as_other_version(config, tmp_path / "two")
    for path in load_model().directory.glob(f"{config.app.pipeline_name}_v*.json"):  # type: ignore[union-attr]
        shutil.copy(path, folder)
    with pytest.raises(ArtifactNotFoundError, match="exactly one version"):
        load_challenger(folder)
    with pytest.raises(ArtifactNotFoundError, match="holds none"):
        load_challenger(tmp_path)


# -- compare, on a log with known differences ---------------------------------

#: (houses, relative difference of the challenger): 10 up 20 %, 20 down 3 %,
#: 60 the same bits, and 10 the challenger refused.
MOVES = [(10, 0.20), (20, -0.03), (60, 0.0), (10, None)]
#: The houses sold at the champion's price times this.
SOLD_AT = math.exp(0.1)
LABEL = "9.9.9+0123456789ab"


def _fill_log(url: str, test_data: pd.DataFrame) -> list[dict[str, Any]]:
    """100 houses of test.csv priced by the champion in one request, shadowed
    by a 'challenger' at MOVES; the first 50 sold (by request and row for even
    rows, by Id for odd ones), 5 more logged a year ago."""
    houses = test_data.head(100).astype(object).where(test_data.head(100).notna(), None)
    records = houses.to_dict(orient="records")
    prices = load_model().predict(houses)["predictions"]
    moves = [move for count, move in MOVES for _ in range(count)]
    now = datetime.now(UTC)
    engine = create_log_engine(url)
    migrate(engine)
    rows = []
    with engine.begin() as connection:
        for log_id, request_id, moment, span in (
            ("a" * 32, "recent", now, range(100)),
            ("b" * 32, "old", now - timedelta(days=365), range(5)),
        ):
            logged = [
                {
                    "log_id": log_id,
                    "row": row,
                    "request_id": request_id,
                    "logged_at": record_time(moment),
                    "model_version": "0.3.0",
                    "inputs": to_json(model_fields(records[row])[0]),
                    "price": prices[row],
                    "errors": None,
                    "ignored_fields": None,
                    "price_ranges": None,
                }
                for row in span
            ]
            insert_records(connection, logged)
            shadow = [
                {
                    "log_id": log_id,
                    "row": row,
                    "challenger_version": LABEL,
                    "logged_at": moment,
                    "price": None if moves[row] is None else prices[row] * (1 + moves[row]),  # type: ignore[operator]
                }
                for row in span
            ]
            connection.execute(insert(shadow_prices), shadow)
            rows += shadow
        for row in range(50):
            by_request = row % 2 == 0
            connection.execute(
                insert(outcomes).values(
                    reference=f"request:recent:{row}"
                    if by_request
                    else f"key:{records[row]['Id']}",
                    request_id="recent" if by_request else None,
                    row=row if by_request else None,
                    house_key=None if by_request else str(records[row]["Id"]),
                    sale_price=prices[row] * SOLD_AT,  # type: ignore[operator]
                    sale_date=date(2026, 11, 1),
                    received_at=now,
                )
            )
    engine.dispose()
    return [{"price": p, "move": m, **r} for p, m, r in zip(prices, moves, records, strict=True)]


def test_compare_reports_the_differences_and_realised_errors_worked_out_by_hand(
    config: Config, tmp_path: Path, test_data: pd.DataFrame
) -> None:
    url = str(tmp_path / "log.sqlite3")
    houses = _fill_log(url, test_data)
    engine = create_log_engine(url)
    report = compare(engine, config, since=datetime.now(UTC) - timedelta(days=30), top=5)
    engine.dispose()

    assert report["challenger"] == LABEL and report["champion_versions"] == ["0.3.0"]
    assert report["compared"]["houses"] == 90  # the old request is before --since
    assert report["priced_by_one_only"] == {
        "champion_only": 10,
        "challenger_only": 0,
        "neither": 0,
    }
    expected = np.array([h["move"] for h in houses if h["move"] is not None])
    for q, measured in report["quantiles"].items():
        assert measured == pytest.approx(np.quantile(expected, float(q)), abs=1e-12)
    assert report["compared"]["share_beyond"] == {"1%": 30 / 90, "5%": 10 / 90, "10%": 10 / 90}
    assert report["compared"]["mean_relative_difference"] == pytest.approx(
        (10 * 0.2 - 20 * 0.03) / 90
    )
    moved = report["moved_most"]
    assert [house["relative_difference"] for house in moved] == pytest.approx([0.2] * 5)
    assert {house["id"] for house in moved} <= {str(h["Id"]) for h in houses[:10]}
    assert all(house["request_id"] == "recent" for house in moved)

    neighbourhoods = report["slices"]["Neighborhood"]
    assert sum(group["houses"] for group in neighbourhoods.values()) == 90
    for name, group in neighbourhoods.items():
        members = [
            h["move"] for h in houses if h["Neighborhood"] == name and h["move"] is not None
        ]
        assert group["houses"] == len(members)
        assert group["mean_relative_difference"] == pytest.approx(np.mean(members))

    # Sold: the first 50, all priced by both. The champion is 10 % (in log) under
    # every sale; the challenger 20 % over or 3 % under the champion on some.
    realised = report["realised"]
    assert realised["houses"] == 50
    assert realised["champion"]["rmsle"] == pytest.approx(0.1, abs=1e-12)
    assert realised["champion"]["bias"] == pytest.approx(-0.1, abs=1e-12)
    errors = [math.log(1 + h["move"]) - 0.1 for h in houses[:50]]
    assert realised["challenger"]["rmsle"] == pytest.approx(math.sqrt(np.mean(np.square(errors))))
    assert realised["challenger"]["bias"] == pytest.approx(np.mean(errors))


def test_the_command_prints_text_and_json_and_says_when_there_is_nothing(
    tmp_path: Path, test_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(tmp_path / "log.sqlite3")
    _fill_log(url, test_data)
    assert main(["compare", "--database-url", url, "--since", "30d", "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert f"challenger {LABEL} against the champion (0.3.0)" in text
    assert "houses priced by both: 90; by the champion only: 10" in text
    assert "beyond 1%: 33.3%, 5%: 11.1%, 10%: 11.1%" in text
    assert "by Neighborhood" in text and "houses that moved most" in text
    assert text.count("+20.00%") >= 3
    assert "realised on the 50 of these houses that sold" in text
    assert "champion   RMSLE 0.1000  bias -0.1000" in text

    assert main(["compare", "--database-url", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compared"]["houses"] == 95 and report["since"] is None

    assert main(["compare", "--database-url", url, "--challenger", "1.0.0+x"]) == 1
    error = capsys.readouterr().err
    assert "no shadow prices of 1.0.0+x" in error and LABEL in error

    engine = create_log_engine(str(tmp_path / "empty.sqlite3"))
    migrate(engine)
    with pytest.raises(NoShadowPricesError, match="CHALLENGER_MODEL_DIR"):
        compare(engine, load_model().config)
    engine.dispose()


def test_malformed_records_are_skipped_and_counted(
    tmp_path: Path, test_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite keeps any value in any column: logged inputs that are not JSON,
    a price or a shadow price that is text, a sale price that is text, a
    shadow time that is none (a traceback each before) are skipped, counted."""
    path = tmp_path / "log.sqlite3"
    _fill_log(str(path), test_data)
    with sqlite3.connect(path) as connection:
        for statement in (
            "UPDATE predictions SET inputs = '{not json' WHERE \"row\" = 60",
            "UPDATE predictions SET price = 'abc' WHERE \"row\" = 61 AND request_id = 'recent'",
            "UPDATE shadow_prices SET price = 'abc' WHERE \"row\" = 62 AND log_id LIKE 'a%'",
            "UPDATE outcomes SET sale_price = 'abc' WHERE reference = 'request:recent:0'",
            "UPDATE shadow_prices SET logged_at = 'garbage' WHERE \"row\" = 1",
        ):
            connection.execute(statement)
    connection.close()
    assert main(["compare", "--database-url", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unreadable"] == 4  # rows 60, 61, 62 and row 0's outcome
    assert report["compared"]["houses"] == 92  # 95, less rows 60, 61, 62
    # 52 sold (the old request's odd rows by their Id too), less row 0's sale price
    assert report["realised"]["houses"] == 51
    assert main(["compare", "--database-url", str(path)]) == 0
    assert "unreadable records skipped: 4 (" in capsys.readouterr().out
