"""The bad-request table: every way a client can get a request wrong gets the
documented 4xx and an error naming the field (or the part of the request),
never a 5xx."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.tests.conftest import make_client
from api.tests.helpers import wait_until_ready

MAX_BODY_BYTES = 256 * 1024
MAX_ROWS = 50
MAX_DEPTH = 16
PREDICT = "/api/v1/predict"

#: A real house (first of test.csv, abridged): the base that cases spoil one field of.
HOUSE: dict[str, Any] = {
    "MSSubClass": 20, "MSZoning": "RH", "LotFrontage": 80.0, "LotArea": 11622,
    "Neighborhood": "NAmes", "OverallQual": 5, "OverallCond": 6, "YearBuilt": 1961,
    "YearRemodAdd": 1961, "TotalBsmtSF": 882.0, "1stFlrSF": 896, "GrLivArea": 896,
    "FullBath": 1, "BedroomAbvGr": 2, "KitchenQual": "TA", "GarageCars": 1.0, "MoSold": 6,
    "YrSold": 2010,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    status: int
    field: str
    row: int | None = None
    json_body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"Content-Type": "application/json"}
    )
    method: str = "POST"
    path: str = PREDICT
    streamed: bool = False


def house(**changes: Any) -> dict[str, Any]:
    return {**HOUSE, **changes}


def one(**changes: Any) -> dict[str, Any]:
    return {"inputs": [house(**changes)]}


def raw(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


HOUSE_JSON = json.dumps(HOUSE)


def spoilt(old: str, new: str) -> str:
    """The house's JSON text with ``old`` replaced (for literals json.dumps never writes)."""
    assert old in HOUSE_JSON
    return HOUSE_JSON.replace(old, new)


def batch(*houses_json: str) -> bytes:
    return raw('{"inputs": [' + ", ".join(houses_json) + "]}")


CASES = [
    # Malformed JSON and wrong top-level types: the body itself, 422.
    Case("malformed_json", 422, "body", content=raw('{"inputs": [')),
    Case("trailing_garbage", 422, "body", content=raw('{"inputs": []} and more')),
    Case("single_quotes", 422, "body", content=raw("{'inputs': []}")),
    Case("empty_body", 422, "body", content=b""),
    Case("top_level_array", 422, "body", json_body=[HOUSE]),
    Case("top_level_string", 422, "body", json_body="a house"),
    Case("top_level_null", 422, "body", content=raw("null")),
    Case("top_level_number", 422, "body", content=raw("42")),
    Case("not_utf8", 422, "body", content=b'{"inputs": [{"Neighborhood": "\xff\xfe"}]}'),
    Case("utf8_bom", 422, "body", content=b"\xef\xbb\xbf" + raw(json.dumps(one()))),
    # The envelope: "inputs" must be a non-empty array.
    Case("missing_inputs", 422, "inputs", json_body={}),
    Case("misspelled_inputs", 422, "inputs", json_body={"input": [HOUSE]}),
    Case("inputs_is_object", 422, "inputs", json_body={"inputs": HOUSE}),
    Case("inputs_is_string", 422, "inputs", json_body={"inputs": "a house"}),
    Case("inputs_is_null", 422, "inputs", json_body={"inputs": None}),
    Case("empty_list", 422, "inputs", json_body={"inputs": []}),
    # Houses that are not houses.
    Case("row_is_number", 422, "*", row=0, json_body={"inputs": [42]}),
    Case("row_is_list", 422, "*", row=0, json_body={"inputs": [[HOUSE]]}),
    Case("empty_house", 422, "*", row=0, json_body={"inputs": [{}]}),
    Case("only_unknown_fields", 422, "*", row=0, json_body={"inputs": [{"Colour": "red"}]}),
    Case("all_fields_null", 422, "*", row=0, json_body={"inputs": [{"GrLivArea": None}]}),
    # Unknown fields, refused in strict mode (otherwise named in warnings: 200).
    Case("misspelled_field_strict", 422, "GrLivArae", row=0, json_body=one(GrLivArae=1500),
         path=PREDICT + "?strict=true"),
    Case("unknown_field_strict", 422, "owner_email", row=0, json_body=one(owner_email="a@b"),
         path=PREDICT + "?strict=1"),
    Case("strict_not_a_boolean", 422, "strict", json_body=one(), path=PREDICT + "?strict=maybe"),
    # Query parameters the endpoint does not take, or given twice (every
    # endpoint: test_query_params_and_head.py).
    Case("misspelled_query_parameter", 422, "explian", json_body=one(),
         path=PREDICT + "?explian=true"),
    Case("unknown_query_parameter_on_drift", 422, "sinse", method="GET",
         path="/api/v1/drift?sinse=7d"),
    Case("repeated_query_parameter", 422, "explain", json_body=one(),
         path=PREDICT + "?explain=true&explain=false"),
    Case("repeated_since", 422, "since", method="GET",
         path="/api/v1/performance?since=7d&since=30d"),
    # Price ranges at a coverage the model has none for, or not a number.
    Case("unknown_coverage", 422, "coverage", json_body=one(), path=PREDICT + "?coverage=0.95"),
    Case("coverage_as_percent", 422, "coverage", json_body=one(), path=PREDICT + "?coverage=90"),
    Case("coverage_nan", 422, "coverage", json_body=one(), path=PREDICT + "?coverage=NaN"),
    Case("coverage_infinite", 422, "coverage", json_body=one(), path=PREDICT + "?coverage=1e999"),
    Case("coverage_negative", 422, "coverage", json_body=one(), path=PREDICT + "?coverage=-0.8"),
    Case("coverage_not_a_number", 422, "coverage", json_body=one(),
         path=PREDICT + "?coverage=0.8&coverage=high"),
    Case("coverage_huge_number", 422, "coverage", json_body=one(),
         path=PREDICT + "?coverage=" + "9" * 5000),
    Case("coverage_repeated_too_often", 422, "coverage", json_body=one(),
         path=PREDICT + "?" + "&".join(["coverage=0.9"] * 11)),
    # Wrong field types.
    Case("text_for_number", 422, "GrLivArea", row=0, json_body=one(GrLivArea="big")),
    Case("numeric_string", 422, "GrLivArea", row=0, json_body=one(GrLivArea="1500")),
    Case("boolean_for_number", 422, "GrLivArea", row=0, json_body=one(GrLivArea=True)),
    Case("array_for_number", 422, "LotArea", row=0, json_body=one(LotArea=[1, 2])),
    Case("object_for_number", 422, "LotArea", row=0, json_body=one(LotArea={"v": 1})),
    Case("number_for_label", 422, "Neighborhood", row=0, json_body=one(Neighborhood=5)),
    Case("empty_label", 422, "Neighborhood", row=0, json_body=one(Neighborhood="")),
    # Impossible values and unknown codes.
    Case("negative_area", 422, "LotArea", row=0, json_body=one(LotArea=-5)),
    Case("zero_living_area", 422, "GrLivArea", row=0, json_body=one(GrLivArea=0)),
    Case("quality_above_10", 422, "OverallQual", row=0, json_body=one(OverallQual=11)),
    Case("fractional_count", 422, "FullBath", row=0, json_body=one(FullBath=1.5)),
    Case("year_1200", 422, "YearBuilt", row=0, json_body=one(YearBuilt=1200)),
    Case("month_13", 422, "MoSold", row=0, json_body=one(MoSold=13)),
    Case("unknown_quality_code", 422, "KitchenQual", row=0, json_body=one(KitchenQual="Superb")),
    Case("lowercase_quality_code", 422, "KitchenQual", row=0, json_body=one(KitchenQual="gd")),
    Case("unknown_subclass_code", 422, "MSSubClass", row=0, json_body=one(MSSubClass=999)),
    # NaN / Infinity literals (not JSON): the request is malformed, the error says where.
    Case("nan_literal", 422, "LotArea", row=0, content=batch(spoilt("11622", "NaN"))),
    Case("infinity_literal", 422, "GrLivArea", row=0,
         content=batch(spoilt('"GrLivArea": 896', '"GrLivArea": Infinity'))),
    Case("minus_infinity_literal", 422, "LotFrontage", row=0,
         content=batch(spoilt("80.0", "-Infinity"))),
    Case("nan_in_second_house", 422, "LotArea", row=1,
         content=batch(HOUSE_JSON, spoilt("11622", "NaN"))),
    Case("nan_outside_inputs", 422, "threshold", content=raw('{"inputs": [], "threshold": NaN}')),
    # A field given twice: as a repeated JSON key (a parser keeps only the last
    # value), or under two of its names (Kaggle's and the Python-safe one).
    Case("repeated_key_in_house", 422, "GrLivArea", row=0,
         content=batch('{"GrLivArea": -5, ' + HOUSE_JSON[1:])),
    Case("repeated_key_in_second_house", 422, "GrLivArea", row=1,
         content=batch(HOUSE_JSON, spoilt('"GrLivArea": 896', '"GrLivArea": 8, "GrLivArea": -5'))),
    Case("repeated_key_spelt_with_an_escape", 422, "GrLivArea", row=0,
         content=batch('{"GrLivAre\\u0061": -5, ' + HOUSE_JSON[1:])),
    Case("repeated_inputs", 422, "inputs",
         content=raw('{"inputs": [' + HOUSE_JSON + '], "inputs": [' + HOUSE_JSON + "]}")),
    Case("repeated_key_in_an_outcome", 422, "sale_price", row=1, path="/api/v1/outcomes",
         content=raw('{"outcomes": [{"key": 1, "sale_price": 1e5, "sale_date": "2010-06-01"}, '
                     '{"key": 2, "sale_price": 2e5, "sale_date": "2010-06-01", '
                     '"sale_price": 1}]}')),
    Case("field_under_two_names", 422, "1stFlrSF", row=0, json_body=one(FirstFlrSF=2000)),
    # Huge numbers.
    Case("lone_surrogate_in_label", 422, "Neighborhood", row=0,
         content=batch(spoilt('"NAmes"', '"\\ud800"'))),
    Case("lone_surrogate_in_second_house", 422, "KitchenQual", row=1,
         content=batch(HOUSE_JSON, spoilt('"TA"', '"T\\udc00A"'))),
    Case("lone_surrogate_in_field_name", 422, "Note\\ud800", row=0,
         content=batch('{"Note\\ud800": 1, ' + HOUSE_JSON[1:])),
    Case("float_overflow_1e999", 422, "LotArea", row=0,
         content=raw(json.dumps(one()).replace("11622", "1e999"))),
    Case("integer_of_400_digits", 422, "LotArea", row=0,
         content=batch(spoilt("11622", "9" * 400))),
    Case("integer_of_5000_digits", 422, "LotArea", row=0,
         content=raw(json.dumps(one()).replace("11622", "9" * 5000))),
    Case("huge_finite_number", 422, "GrLivArea", row=0, json_body=one(GrLivArea=1e300)),
    Case("int64_overflow", 422, "LotArea", row=0, json_body=one(LotArea=2**70)),
    # Limits.
    Case("oversized_body", 413, "body", json_body=one(Notes="x" * MAX_BODY_BYTES)),
    Case("oversized_chunked_body", 413, "body", json_body=one(Notes="x" * MAX_BODY_BYTES),
         streamed=True),
    Case("too_many_rows", 413, "inputs", json_body={"inputs": [HOUSE] * (MAX_ROWS + 1)}),
    Case("deeply_nested_value", 422, "body",
         content=raw(json.dumps(one()).replace("11622", nested(MAX_DEPTH + 5)))),
    Case("deeply_nested_100k_levels", 422, "body", content=raw(nested(100_000))),
    Case("very_long_string", 422, "Neighborhood", row=0,
         json_body=one(Neighborhood="x" * 100_000)),
    Case("very_long_field_name", 422, "*", row=0, json_body={"inputs": [{"x" * 100_000: 1}]}),
    # Content type.
    Case("text_plain", 415, "Content-Type", content=raw(json.dumps(one())),
         headers={"Content-Type": "text/plain"}),
    Case("form_encoded", 415, "Content-Type", content=b"inputs=house",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("no_content_type", 415, "Content-Type", content=raw(json.dumps(one())), headers={}),
    # Wrong method and path.
    Case("gzip_body", 415, "Content-Encoding", content=gzip.compress(raw(json.dumps(one()))),
         headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
    Case("long_content_type", 415, "Content-Type", content=raw(json.dumps(one())),
         headers={"Content-Type": "text/" + "x" * 20_000}),
    Case("get_on_predict", 405, "method", method="GET"),
    Case("unknown_path", 404, "path", method="GET", path="/api/v1/predictions"),
    # A mixed batch is not an error: the good house is priced.
    Case("mixed_good_and_bad_batch", 200, "OverallQual", row=1,
         json_body={"inputs": [HOUSE, house(OverallQual=0)]}),
]  # fmt: skip


@pytest.fixture(scope="module")
def limited_client() -> Iterator[TestClient]:
    with make_client(
        max_body_bytes=MAX_BODY_BYTES, max_rows=MAX_ROWS, max_json_depth=MAX_DEPTH
    ) as client:
        wait_until_ready(client)
        yield client


def _send(client: TestClient, case: Case) -> Any:
    if case.method == "GET":
        return client.get(case.path)
    if case.streamed:
        payload = json.dumps(case.json_body).encode()
        chunks = (payload[i : i + 16384] for i in range(0, len(payload), 16384))
        return client.post(case.path, content=chunks, headers=case.headers)
    if case.content is not None:
        return client.post(case.path, content=case.content, headers=case.headers)
    return client.post(case.path, json=case.json_body)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(limited_client: TestClient, case: Case) -> None:
    response = _send(limited_client, case)
    assert response.status_code < 500
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    errors = body["errors"]
    assert isinstance(errors, list) and errors
    for error in errors:
        assert set(error) == {"row", "field", "message"}
        assert isinstance(error["message"], str) and error["message"]
        assert len(error["message"]) < 500  # no echo of huge inputs
    assert (case.row, case.field) in {(e["row"], e["field"]) for e in errors}, errors
    if case.status != 200:
        assert body["request_id"] == response.headers["X-Request-ID"]
    else:
        assert body["predictions"][0] is not None and body["predictions"][1] is None


@pytest.mark.parametrize(
    "path", ["/api/v1/model/report/%0A", "/api/v1/health%0A", "/api/v1/ready%0D%0A", "/%00"]
)
def test_a_control_character_in_the_path_is_no_endpoint(
    limited_client: TestClient, path: str
) -> None:
    # Route patterns end in `$`, which matches before a final newline: without
    # the check, /api/v1/model/report/%0A answered the report page.
    response = limited_client.get(path)
    assert response.status_code == 404
    assert response.json()["errors"] == [
        {"row": None, "field": "path", "message": "no such endpoint: see /docs for the API"}
    ]
