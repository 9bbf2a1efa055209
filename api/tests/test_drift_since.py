"""``GET /api/v1/drift?since=``: whatever a client sends, a 200 or a 422 that
names ``since`` (never a 5xx), and bounded work: starts rounded to a few
cache keys, one computation at a time in a child process, a bounded line of
waiting starts, a bounded cache, the previous report while a refresh is slow.

Against the app in process (TestClient), logging to its own SQLite file.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.app.operations.drift_reports import EARLIEST, LATEST, DriftReports, window_start
from api.tests.conftest import make_client
from api.tests.helpers import wait_until_ready
from api.tests.test_drift_metrics import log_houses
from regression_model.monitoring.since import parse_since

HOUR = 3600
#: UTC offsets as datetime allows them: strictly within a day, to the microsecond.
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=24) + timedelta(microseconds=1),
    max_value=timedelta(hours=24) - timedelta(microseconds=1),
)
ZONES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=23, minutes=59)),
            timezone(-timedelta(hours=23, minutes=59)),
        ]
    ),
    OFFSETS.map(timezone),
)


def expected_start(moment: datetime, step: int) -> datetime:
    """The rounded start, computed another way: whole microseconds since the
    epoch in integers (the UTC offset subtracted by hand), floored, clamped."""
    naive = moment.replace(tzinfo=None)
    offset = moment.utcoffset() or timedelta(0)
    epoch = datetime(1970, 1, 1)
    micros = (naive - epoch) // timedelta(microseconds=1) - offset // timedelta(microseconds=1)
    lowest = (datetime.min - epoch) // timedelta(microseconds=1)
    highest = (datetime.max - epoch) // timedelta(microseconds=1)
    micros = min(max(micros, lowest), highest)
    step_micros = step * 1_000_000
    floored = max(micros // step_micros * step_micros, lowest)
    return (epoch + timedelta(microseconds=floored)).replace(tzinfo=UTC)


@given(moment=st.datetimes(timezones=ZONES), step=st.sampled_from([1, 7, 60, HOUR, 86400]))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1))), HOUR)  # UTC is year 0
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(minutes=1))), HOUR)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1))), 7)  # min is no multiple of 7 s
def test_window_start_rounds_down_in_utc_and_never_overflows(moment: datetime, step: int) -> None:
    start = window_start(moment, step)
    assert start.tzinfo is UTC
    assert start == expected_start(moment, step)
    assert EARLIEST <= start <= LATEST


def _iso(moment: datetime, timespec: str) -> str:
    return moment.isoformat(timespec=timespec)


#: Times and spans every client may send: each must get a report.
VALID_SINCE = st.one_of(
    # ISO 8601 times: any year, any offset (the extremes included), naive, with
    # or without fractions of a second, "T" or a space, "Z" for UTC, a date alone.
    st.builds(
        _iso,
        st.datetimes(timezones=ZONES),
        st.sampled_from(["auto", "seconds", "milliseconds", "microseconds", "minutes"]),
    ),
    st.datetimes(timezones=ZONES).map(lambda m: m.isoformat(sep=" ")),
    st.datetimes(timezones=st.just(UTC)).map(lambda m: m.isoformat().replace("+00:00", "Z")),
    st.dates().map(lambda d: d.isoformat()),
    # spans back from now: none, ordinary, and reaching far beyond year 1
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.one_of(
            st.integers(0, 10**12),
            st.floats(0, 1e12, allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.6f}"),
        ),
        st.sampled_from("smhdw"),
    ),
)
#: Anything else a client may put in the query string (no lone surrogates:
#: they cannot be sent in a URL).
ANY_SINCE = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.from_regex(r"[0-9+\-:TZ. smhdw]{0,40}", fullmatch=True),
)


@pytest.fixture(scope="module")
def drift_client(
    tmp_path_factory: pytest.TempPathFactory, test_houses: list[dict[str, Any]]
) -> Iterator[TestClient]:
    """An app logging to its own SQLite file, with 20 houses logged."""
    path = tmp_path_factory.mktemp("drift-since") / "log.sqlite3"
    with make_client(
        prediction_log_path=path, prediction_log_flush_seconds=0.05, drift_wait_seconds=60
    ) as client:
        wait_until_ready(client)
        log_houses(client, test_houses[:20])
        yield client
        client.app.state.drift_reports.close()  # type: ignore[attr-defined]


def assert_since_error(response: Any) -> None:
    """The API's error shape, naming ``since`` and saying what to send."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["since"]
    assert body["errors"][0]["row"] is None
    assert "ISO 8601" in body["errors"][0]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=st.one_of(st.tuples(st.just(True), VALID_SINCE), st.tuples(st.just(False), ANY_SINCE)))
@example(case=(True, "0001-01-01T00:00:00+00:01"))  # the two 500s found
@example(case=(True, "9999-12-31T23:59:59-00:01"))
@example(case=(True, "7d"))
@example(case=(True, "99999999999w"))
@example(case=(True, "2026-11-27T00:00:00.123456Z"))
@example(case=(False, ""))
@example(case=(False, "1e999d"))
@example(case=(False, "2026-11-27T00:00:00.123456789Z"))
def test_any_since_gets_a_report_or_a_422_naming_it(
    drift_client: TestClient, case: tuple[bool, str]
) -> None:
    valid, since = case
    before = datetime.now(UTC)
    response = drift_client.get("/api/v1/drift", params={"since": since})
    assert response.status_code in (200, 422), (since, response.status_code, response.text)
    if response.status_code == 422:
        assert not valid, since
        assert_since_error(response)
        with pytest.raises(ValueError):
            parse_since(since, before)
        return
    report = response.json()
    assert int(response.headers["Age"]) >= 0
    asked = datetime.fromisoformat(report["since"])
    # the time asked for (a span: measured from a moment between these two),
    # rounded down to the hour in UTC, computed another way
    earliest = expected_start(parse_since(since, before), HOUR)
    latest = expected_start(parse_since(since, datetime.now(UTC)), HOUR)
    assert earliest <= asked <= latest, since
    assert report["houses"] in (0, 20)


@pytest.mark.parametrize(
    "raw",
    ["since=%FF", "since=%00", "since=2026-13-01", "since=24x", "since=-7d", "since=" + "9" * 500],
)
def test_undecodable_or_malformed_since_is_a_422(drift_client: TestClient, raw: str) -> None:
    assert_since_error(drift_client.get(f"/api/v1/drift?{raw}"))


def test_relative_since_is_that_long_ago_rounded(drift_client: TestClient) -> None:
    before = datetime.now(UTC)
    report = drift_client.get("/api/v1/drift", params={"since": "7d"}).json()
    asked = datetime.fromisoformat(report["since"])
    assert expected_start(before - timedelta(days=7), HOUR) <= asked
    assert asked <= before - timedelta(days=7)
    assert report["houses"] == 20
    far = drift_client.get("/api/v1/drift", params={"since": "99999999999w"}).json()
    assert datetime.fromisoformat(far["since"]) == EARLIEST and far["houses"] == 20


# -- bounded work ------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Counts computations, and holds each one while ``gate`` is clear."""
    state: dict[str, Any] = {"calls": [], "gate": threading.Event(), "running": 0, "most": 0}
    state["gate"].set()
    original = DriftReports._compute
    lock = threading.Lock()

    def compute(self: DriftReports, model: Any, since: Any) -> dict[str, Any]:
        with lock:
            state["calls"].append(since)
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        try:
            assert state["gate"].wait(60)
            return original(self, model, since)
        finally:
            with lock:
                state["running"] -= 1

    monkeypatch.setattr(DriftReports, "_compute", compute)
    return state


@pytest.fixture
def fresh_client(tmp_path: Path, test_houses: list[dict[str, Any]]) -> Iterator[TestClient]:
    with make_client(
        prediction_log_path=tmp_path / "log.sqlite3",
        prediction_log_flush_seconds=0.05,
        drift_wait_seconds=30,
    ) as client:
        wait_until_ready(client)
        log_houses(client, test_houses[:5])
        yield client
        client.app.state.drift_reports.close()  # type: ignore[attr-defined]


def reports_of(client: TestClient) -> DriftReports:
    return client.app.state.drift_reports  # type: ignore[attr-defined,no-any-return]


def test_times_within_one_hour_share_one_report(
    fresh_client: TestClient, counted: dict[str, Any]
) -> None:
    answers = [
        fresh_client.get(
            "/api/v1/drift", params={"since": f"2026-11-27T10:{m:02d}:{s:02d}.5+00:00"}
        )
        for m, s in [(0, 0), (12, 30), (59, 59), (30, 0)]
    ] + [fresh_client.get("/api/v1/drift", params={"since": "2026-11-27T12:15:00+02:00"})]
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["since"] for a in answers} == {"2026-11-27T10:00:00Z"}
    assert len(answers[0].content) > 1000 and len({a.content for a in answers}) == 1
    assert counted["calls"] == [datetime(2026, 11, 27, 10, tzinfo=UTC)]


def test_one_computation_at_a_time_and_a_bounded_line(
    fresh_client: TestClient, counted: dict[str, Any]
) -> None:
    """While one report is computed, MAX_WAITING other starts may wait; a
    request for one more gets 503 with Retry-After at once (nothing cached for
    it); the whole window (the gauges') is still admitted, first in line."""
    reports = reports_of(fresh_client)
    model = fresh_client.app.state.model_service.model  # type: ignore[attr-defined]
    counted["gate"].clear()
    starts = [datetime(2020, 1, 1, hour, tzinfo=UTC) for hour in range(reports.max_waiting + 1)]
    futures = [reports.refresh(model, starts[0])]
    deadline = time.monotonic() + 10
    while not counted["calls"]:  # the first is running (held at the gate), not waiting
        assert time.monotonic() < deadline
        time.sleep(0.01)
    futures += [reports.refresh(model, start) for start in starts[1:]]
    assert all(f is not None for f in futures)
    assert reports.refresh(model, starts[-1]) is futures[-1]  # joined, not queued again
    assert reports.refresh(model, datetime(2021, 1, 1, tzinfo=UTC)) is None
    started = time.monotonic()
    refused = fresh_client.get("/api/v1/drift", params={"since": "2021-01-01T00:00:00Z"})
    assert time.monotonic() - started < 5
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["errors"][0]["field"] == "*"
    whole = reports.refresh(model, None)
    assert whole is not None
    counted["gate"].set()
    assert whole.result(60).report["since"] is None
    for future in futures:
        assert future is not None and future.result(60).report["houses"] == 5
    assert counted["most"] == 1  # never two at once
    # the first start was already running; then the whole window jumped the line
    assert counted["calls"][:2] == [starts[0], None]
    assert sorted(counted["calls"][2:]) == starts[1:]


def test_the_cache_is_bounded(fresh_client: TestClient, counted: dict[str, Any]) -> None:
    reports = reports_of(fresh_client)
    reports.max_reports = 3
    for day in range(1, 8):
        assert (
            fresh_client.get("/api/v1/drift", params={"since": f"2026-01-0{day}"}).status_code
            == 200
        )
    assert len(reports._reports) == 3
    assert list(reports._reports) == [datetime(2026, 1, d, tzinfo=UTC) for d in (5, 6, 7)]
    assert len(counted["calls"]) == 7
    # a start that was dropped is computed again
    assert fresh_client.get("/api/v1/drift", params={"since": "2026-01-01"}).status_code == 200
    assert len(counted["calls"]) == 8


def test_a_slow_refresh_answers_the_previous_report_with_its_age(
    fresh_client: TestClient, counted: dict[str, Any]
) -> None:
    reports = reports_of(fresh_client)
    first = fresh_client.get("/api/v1/drift", params={"since": "2026-01-01"})
    assert first.status_code == 200
    reports.max_age_seconds = 0.5
    fresh_client.app.state.settings = fresh_client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"drift_wait_seconds": 0.3}
    )
    time.sleep(1.1)
    counted["gate"].clear()
    started = time.monotonic()
    stale = fresh_client.get("/api/v1/drift", params={"since": "2026-01-01"})
    assert time.monotonic() - started < 3
    assert stale.status_code == 200
    assert stale.content == first.content  # the previous report, as it was
    assert int(stale.headers["Age"]) >= 1
    # nothing cached for this start: 503 after the wait, with Retry-After
    other = fresh_client.get("/api/v1/drift", params={"since": "2025-01-01"})
    assert other.status_code == 503 and other.headers["Retry-After"] == "1"
    assert "still being computed" in other.json()["errors"][0]["message"]
    counted["gate"].set()
    deadline = time.monotonic() + 30
    while reports.cached(datetime(2026, 1, 1, tzinfo=UTC)).age() >= 1:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the refresh never finished"
        time.sleep(0.05)
    fresh = fresh_client.get("/api/v1/drift", params={"since": "2026-01-01"})
    generated = datetime.fromisoformat(fresh.json()["generated_at"])
    assert generated > datetime.fromisoformat(first.json()["generated_at"])


def test_the_child_process_recovers_and_stops_when_idle(fresh_client: TestClient) -> None:
    reports = reports_of(fresh_client)
    assert fresh_client.get("/api/v1/drift").status_code == 200
    child = reports._child
    assert child is not None and child.alive()
    # A niced process of its own, not a thread of the worker.
    assert os.getpriority(os.PRIO_PROCESS, child.process.pid) > os.getpriority(os.PRIO_PROCESS, 0)
    os.kill(child.process.pid, signal.SIGKILL)  # a process this test's app started
    child.process.wait()
    reports.max_age_seconds = 0
    again = fresh_client.get("/api/v1/drift")
    assert again.status_code == 200 and again.json()["houses"] == 5
    assert reports._child is not child and reports._child is not None
    restarted = reports._child
    reports.idle_seconds = 0.2
    assert (
        fresh_client.get("/api/v1/drift").status_code == 200
    )  # wakes the thread with the new bound
    deadline = time.monotonic() + 10
    while reports._thread is not None or restarted.alive():
        assert time.monotonic() < deadline, "the idle thread and child did not stop"
        time.sleep(0.05)
    assert fresh_client.get("/api/v1/drift").status_code == 200  # and start again
