"""``POST /api/v1/outcomes``, in SQLite and PostgreSQL: held-out houses of
train.csv priced through the API, their real prices posted back by request
and row or by Id, stored once however often they are posted; another price
for a recorded house refused (409 alone, an error of its row beside good
ones); each bad row named with its field (422 when none is good); unknown
fields refused by name; the key required; the log off, a locked database and
an unreachable one answered 503, nothing stored, never 500; and
``regression-model outcomes import`` writing the same table.

PostgreSQL uses ``TEST_DATABASE_URL`` (skipped without it, failing with
``REQUIRE_POSTGRES=1``), as in test_prediction_log.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app.core.security import API_KEY_HEADER
from api.tests.conftest import as_json_houses, make_client
from api.tests.helpers import wait_until_ready
from api.tests.test_prediction_log import postgres_url  # noqa: F401  (a fixture)
from regression_model import get_config, load_dataset
from regression_model.cli import main as cli_main
from regression_model.monitoring.log_store import count_log, create_log_engine, migrate, outcomes
from testkit.processes import free_port

OUTCOMES = "/api/v1/outcomes"
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    """The last fifth of train.csv: houses whose sale prices come back later."""
    train = load_dataset(get_config().app.training_data_file)
    return train.tail(len(train) // 5).reset_index(drop=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "log.sqlite3")
    return str(request.getfixturevalue("postgres_url"))


def _log_settings(url: str, tmp_path: Path) -> dict[str, Any]:
    if "://" in url:
        return {"database_url": url, "prediction_log_spool_dir": tmp_path / "spool"}
    return {"prediction_log_path": Path(url)}


@pytest.fixture
def client(log_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(**_log_settings(log_url, tmp_path)) as started:
        wait_until_ready(started)
        yield started


def stored(url: str) -> dict[str, dict[str, Any]]:
    """The outcomes table's rows by reference (none before the table is made)."""
    engine = create_log_engine(url)
    migrate(engine)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(outcomes)).mappings()
            return {row["reference"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def _wait_for_log(url: str, records: int) -> None:
    engine = create_log_engine(url)
    migrate(engine)  # the writer may not have made the table yet
    try:
        deadline = time.monotonic() + 30
        while count_log(engine) < records:
            assert time.monotonic() < deadline, "the priced houses were never logged"
            time.sleep(0.05)
    finally:
        engine.dispose()


def _sale(house: dict[str, Any]) -> dict[str, Any]:
    return {
        "sale_price": house["SalePrice"],
        "sale_date": f"{house['YrSold']:04d}-{house['MoSold']:02d}-01",
    }


def test_real_prices_of_priced_houses_are_stored_once(
    client: TestClient, log_url: str, held_out: pd.DataFrame
) -> None:
    houses = as_json_houses(held_out)
    half = len(houses) // 2
    request_ids = []
    for batch in (houses[:half], houses[half:]):
        inputs = [{k: v for k, v in house.items() if k != "SalePrice"} for house in batch]
        answer = client.post("/api/v1/predict", json={"inputs": inputs})
        assert answer.status_code == 200 and answer.json()["errors"] is None, answer.text
        request_ids.append(answer.headers["X-Request-ID"])
    _wait_for_log(log_url, len(houses))
    # The first request's houses quoted by request and row, the second's by Id.
    sales = [
        {"request_id": request_ids[0], "row": row, **_sale(house)}
        for row, house in enumerate(houses[:half])
    ] + [{"key": house["Id"], **_sale(house)} for house in houses[half:]]

    first = client.post(OUTCOMES, json={"outcomes": sales})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "stored": len(sales),
        "already_recorded": 0,
        "unmatched": None,
        "errors": None,
    }
    rows = stored(log_url)
    assert len(rows) == len(sales)
    for row, house in enumerate(houses):
        reference = f"request:{request_ids[0]}:{row}" if row < half else f"key:{house['Id']}"
        assert rows[reference]["sale_price"] == float(house["SalePrice"])
        assert rows[reference]["sale_date"] == date(house["YrSold"], house["MoSold"], 1)

    again = client.post(OUTCOMES, json={"outcomes": sales})
    assert again.status_code == 200
    assert again.json() == {
        "stored": 0,
        "already_recorded": len(sales),
        "unmatched": None,
        "errors": None,
    }
    assert stored(log_url) == rows  # nothing rewritten

    # Another price for a recorded house: refused, the recorded one kept.
    changed = {**sales[0], "sale_price": sales[0]["sale_price"] + 1}
    alone = client.post(OUTCOMES, json={"outcomes": [changed]})
    assert alone.status_code == 409, alone.text
    [error] = alone.json()["errors"]
    assert (error["row"], error["field"]) == (0, "sale_price")
    assert f"request:{request_ids[0]}:0 is already recorded with sale_price" in error["message"]
    beside = client.post(OUTCOMES, json={"outcomes": [sales[1], changed]})
    assert beside.status_code == 200
    assert beside.json()["already_recorded"] == 1
    assert [(e["row"], e["field"]) for e in beside.json()["errors"]] == [(1, "sale_price")]
    assert stored(log_url) == rows


def test_a_request_reference_not_in_the_log_is_stored_and_flagged(
    client: TestClient, log_url: str
) -> None:
    answer = client.post(
        "/api/v1/predict", json={"inputs": [{"GrLivArea": 1500}, {"GrLivArea": -5}]}
    )
    request_id = answer.headers["X-Request-ID"]
    _wait_for_log(log_url, 2)
    sale = {"sale_price": 150000, "sale_date": "2010-06-01"}
    posted = client.post(
        OUTCOMES,
        json={
            "outcomes": [
                {"request_id": request_id, "row": 0, **sale},
                {"request_id": request_id, "row": 1, **sale},  # rejected by /predict
                {"request_id": "pruned-long-ago", "row": 0, **sale},
            ]
        },
    )
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["stored"] == 3
    assert [(u["row"], u["reference"]) for u in body["unmatched"]] == [
        (1, f"request:{request_id}:1"),
        (2, "request:pruned-long-ago:0"),
    ]
    assert "was not priced" in body["unmatched"][0]["message"]
    assert "pruned" in body["unmatched"][1]["message"]
    assert len(stored(log_url)) == 3


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(prediction_log_path=tmp_path / "log.sqlite3") as started:
        yield started


def test_each_bad_row_is_named_and_the_good_ones_stored(
    sqlite_client: TestClient, tmp_path: Path
) -> None:
    good = {"key": "A-1", "sale_price": 150000, "sale_date": "2010-06-01"}
    bad = [
        {**good, "sale_price": 0},
        {**good, "sale_date": "2999-01-01"},
        {"sale_price": 150000, "sale_date": "2010-06-01"},
        {**good, "SalePrice": 150000},
        {**good, "sale_price": "150000"},
        {"request_id": "abc", **good},
        "A-1,150000",
    ]
    refused = sqlite_client.post(OUTCOMES, json={"outcomes": bad})
    assert refused.status_code == 422, refused.text
    errors = [(e["row"], e["field"]) for e in refused.json()["errors"]]
    assert errors == [
        (0, "sale_price"),
        (1, "sale_date"),
        (2, "*"),
        (3, "SalePrice"),
        (4, "sale_price"),
        (5, "key"),
        (6, "*"),
    ]
    messages = [e["message"] for e in refused.json()["errors"]]
    assert "out of range: must be between 1,000 and 100,000,000 dollars" in messages[0]
    assert "in the future" in messages[1]
    assert "no reference to a priced house" in messages[2]
    assert "unknown field, refused — did you mean sale_price?" in messages[3]
    assert not stored(str(tmp_path / "log.sqlite3"))

    mixed = sqlite_client.post(OUTCOMES, json={"outcomes": [bad[0], good]})
    assert mixed.status_code == 200
    assert mixed.json()["stored"] == 1
    assert [(e["row"], e["field"]) for e in mixed.json()["errors"]] == [(0, "sale_price")]
    assert list(stored(str(tmp_path / "log.sqlite3"))) == ["key:A-1"]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"outcomes": []}, "outcomes", "outcomes is empty"),
        ({"outcomes": {"key": 1}}, "outcomes", "expected an array of outcomes, got object"),
        ({"inputs": [{"key": 1}]}, "inputs", "unknown field of the request, refused"),
        ({"inputs": [{"key": 1}]}, "outcomes", "the request has no outcomes"),
    ],
)
def test_a_wrong_envelope_is_refused_by_name(
    sqlite_client: TestClient, body: dict[str, Any], field: str, says: str
) -> None:
    answer = sqlite_client.post(OUTCOMES, json=body)
    assert answer.status_code == 422
    assert any(e["field"] == field and says in e["message"] for e in answer.json()["errors"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("[]", 'expected a JSON object, got array: send a JSON object {"outcomes": [outcome'),
        ("null", 'got null: send a JSON object {"outcomes": [outcome'),
        ('"x"', 'got string: send a JSON object {"outcomes": [outcome'),
        ("", 'the request has no body: send a JSON object {"outcomes": [outcome'),
    ],
)
def test_a_body_that_is_no_object_is_told_the_outcomes_shape(
    sqlite_client: TestClient, body: str, says: str
) -> None:
    answer = sqlite_client.post(
        OUTCOMES, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert says in error["message"], error
    assert "inputs" not in error["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '"\\ud800"'])
def test_a_non_finite_or_broken_value_names_the_outcome_and_field(
    sqlite_client: TestClient, literal: str
) -> None:
    body = (
        '{"outcomes": [{"key": "A-1", "sale_price": 150000, "sale_date": "2010-06-01"}, '
        f'{{"key": "A-2", "sale_price": {literal}, "sale_date": "2010-06-01"}}]}}'
    )
    answer = sqlite_client.post(
        OUTCOMES, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert [(e["row"], e["field"]) for e in answer.json()["errors"]] == [(1, "sale_price")]


@pytest.mark.parametrize("digits", [310, 1000, 4300, 5001])
def test_a_price_of_any_length_is_a_422_of_its_row(sqlite_client: TestClient, digits: int) -> None:
    """JSON keeps an integer whole however long it is (the parser hands the
    package a Python int beyond any float): refused for its row, never a 500."""
    body = (
        '{"outcomes": [{"key": "A-1", "sale_price": 1' + "0" * (digits - 1) + ","
        ' "sale_date": "2010-06-01"}]}'
    )
    answer = sqlite_client.post(
        OUTCOMES, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert (error["row"], error["field"]) == (0, "sale_price")
    assert len(error["message"]) < 200


def test_more_outcomes_than_max_rows_is_413(tmp_path: Path) -> None:
    sale = {"sale_price": 150000, "sale_date": "2010-06-01"}
    with make_client(prediction_log_path=tmp_path / "log.sqlite3", max_rows=2) as client:
        answer = client.post(OUTCOMES, json={"outcomes": [{"key": i, **sale} for i in range(3)]})
    assert answer.status_code == 413
    assert "3 outcomes in one request; at most 2" in answer.json()["errors"][0]["message"]


def test_the_key_is_required(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    body = {"outcomes": [{"key": 1, "sale_price": 150000, "sale_date": "2010-06-01"}]}
    with make_client(prediction_log_path=path, api_key=KEY) as client:
        for headers in ({}, {API_KEY_HEADER: "wrong"}):
            refused = client.post(OUTCOMES, json=body, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["field"] == API_KEY_HEADER
        assert not stored(str(path))
        allowed = client.post(OUTCOMES, json=body, headers={API_KEY_HEADER: KEY})
        assert allowed.status_code == 200 and allowed.json()["stored"] == 1


def test_without_a_log_outcomes_are_503() -> None:
    with make_client() as client:
        answer = client.post(
            OUTCOMES, json={"outcomes": [{"key": 1, "sale_price": 1e5, "sale_date": "2010-06-01"}]}
        )
    assert answer.status_code == 503
    assert "the prediction log, which is off" in answer.json()["errors"][0]["message"]


def test_a_locked_database_is_503_then_the_outcomes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    sale = {"sale_price": 150000, "sale_date": "2010-06-01"}
    with make_client(prediction_log_path=path, prediction_log_timeout_seconds=0.3) as client:
        assert client.post(OUTCOMES, json={"outcomes": [{"key": 0, **sale}]}).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        try:
            locked = client.post(OUTCOMES, json={"outcomes": [{"key": 1, **sale}]})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert locked.status_code == 503, locked.text
        assert locked.headers["Retry-After"] == "5"
        message = locked.json()["errors"][0]["message"]
        assert "cannot store outcomes (OperationalError): nothing was stored" in message
        assert list(stored(str(path))) == ["key:0"]
        again = client.post(OUTCOMES, json={"outcomes": [{"key": 1, **sale}]})
        assert again.status_code == 200 and again.json()["stored"] == 1


def test_an_unreachable_database_is_503_and_the_service_goes_on(tmp_path: Path) -> None:
    down = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    sale = {"key": 1, "sale_price": 150000, "sale_date": "2010-06-01"}
    with make_client(
        database_url=down,
        prediction_log_spool_dir=tmp_path / "spool",
        prediction_log_timeout_seconds=1,
    ) as client:
        for _ in range(3):  # the store tries again each time, and fails alike
            answer = client.post(OUTCOMES, json={"outcomes": [sale]})
            assert answer.status_code == 503, answer.text
            assert "nothing was stored" in answer.json()["errors"][0]["message"]
            assert "nobody" not in answer.text  # no URL in the answer
        assert client.get("/api/v1/health").status_code == 200


def test_the_cli_and_the_api_store_in_the_same_table(
    log_url: str, tmp_path: Path, held_out: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    sales = tmp_path / "sales.csv"
    held_out[["Id", "SalePrice", "YrSold", "MoSold"]].to_csv(sales, index=False)
    status = cli_main(["outcomes", "import", str(sales), "--database-url", log_url])
    assert status == 0, capsys.readouterr().err
    assert len(stored(log_url)) == len(held_out)
    houses = as_json_houses(held_out[["Id", "SalePrice", "YrSold", "MoSold"]])
    with make_client(**_log_settings(log_url, tmp_path)) as client:
        answer = client.post(
            OUTCOMES, json={"outcomes": [{"key": h["Id"], **_sale(h)} for h in houses]}
        )
    assert answer.status_code == 200
    assert answer.json()["already_recorded"] == len(held_out)


def test_the_documented_outcome_has_both_forms(sqlite_client: TestClient) -> None:
    document = sqlite_client.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    items = schemas["OutcomesRequest"]["properties"]["outcomes"]["items"]["anyOf"]
    assert [item["$ref"].rsplit("/", 1)[1] for item in items] == [
        "OutcomeByRequest",
        "OutcomeByKey",
    ]
    price = schemas["OutcomeByKey"]["properties"]["sale_price"]
    assert (price["minimum"], price["maximum"]) == get_config().model.plausible_price_range
    assert schemas["OutcomeByRequest"]["additionalProperties"] is False
    responses = document["paths"][OUTCOMES]["post"]["responses"]
    assert {"200", "401", "409", "413", "422", "503"} <= set(responses)


def test_concurrent_posts_share_two_database_jobs_in_each_event_loop(tmp_path: Path) -> None:
    """Requests beyond the two jobs wait their turn (no error), and an app
    started again (another event loop, as under a new TestClient) does too."""
    from concurrent.futures import ThreadPoolExecutor

    from api.app.core.settings import Settings
    from api.app.main import create_app

    app = create_app(Settings(_env_file=None, prediction_log_path=tmp_path / "log.sqlite3"))  # type: ignore[call-arg]
    for start in (0, 1):
        with TestClient(app) as client:
            bodies = [
                {
                    "outcomes": [
                        {"key": f"{start}-{n}-{i}", "sale_price": 1e5, "sale_date": "2010-06-01"}
                        for i in range(500)
                    ]
                }
                for n in range(6)
            ]
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda body: client.post(OUTCOMES, json=body), bodies))
            assert [a.status_code for a in answers] == [200] * 6
            assert all(a.json()["stored"] == 500 for a in answers)
    assert len(stored(str(tmp_path / "log.sqlite3"))) == 2 * 6 * 500
