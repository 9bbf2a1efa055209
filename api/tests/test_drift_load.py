"""A flood of ``GET /api/v1/drift`` with ever-different ``since`` values does
not slow down ``/predict`` nor grow the worker's memory.

``python -m api`` with one worker and the SQLite prediction log, holding
about 2,900 logged houses. ``/predict`` latency is measured by one client
sending one house at a time, first alone, then while wrk floods ``/drift``
over 16 connections (times of the last two days and of any year with any
offset, spans such as ``36h``, and garbage). The median under the flood must
stay within twice the median alone, measured side by side in this test; the
worker's resident memory (and the drift process's) is sampled throughout.

Before reports were computed off the request path this took one worker from
96 MB to a 749 MB peak and the other clients' ``/predict`` median from
2.7 ms to 45 ms. Needs ``wrk`` (Debian package): skipped without it, a
failure instead with ``REQUIRE_WRK=1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.tests.conftest import FIGURES
from api.tests.helpers import running_server
from api.tests.test_load_and_faults import workers_of
from testkit import pinned, status_kib

pytestmark = [pytest.mark.server, pytest.mark.load]

ROUNDS = 4
#: Seconds of /predict latency per round, alone and under the flood.
PROBE_SECONDS = 2
FLOOD_CONNECTIONS = 16

#: wrk's Lua script: a different `since` per request; counts answers by status.
FLOOD_SCRIPT = r"""
local threads = {}
local units = {"s", "m", "h", "d", "w"}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(7919 * (id + 1) + os.time())
  ok, refused, busy, failed = 0, 0, 0, 0
end
function request()
  local r = math.random()
  local since
  if r < 0.4 then
    -- a time of the last two days, to the microsecond, with an offset
    local t = os.time() - math.random(0, 172800)
    since = os.date("!%Y-%m-%dT%H:%M:%S", t) .. string.format(".%06d%s%02d:%02d",
      math.random(0, 999999), math.random() < 0.5 and "%2B" or "-",
      math.random(0, 23), math.random(0, 59))
  elseif r < 0.7 then
    -- any year, any offset
    since = string.format("%04d-%02d-%02dT%02d:%02d:%02d%s%02d:%02d",
      math.random(1, 9999), math.random(1, 12), math.random(1, 28), math.random(0, 23),
      math.random(0, 59), math.random(0, 59), math.random() < 0.5 and "%2B" or "-",
      math.random(0, 23), math.random(0, 59))
  elseif r < 0.9 then
    since = math.random(0, 100000) .. units[math.random(1, 5)]
  else
    since = "yesterday-" .. math.random(1, 1000000000)
  end
  return wrk.format("GET", "/api/v1/drift?since=" .. since)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 422 then refused = refused + 1
  elseif status == 503 then busy = busy + 1
  else failed = failed + 1 end
end
function done(summary, latency, requests)
  local totals = {ok = 0, refused = 0, busy = 0, failed = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
  end
  io.write(string.format("DRIFT %d %d %d %d %d\n", summary.requests, totals.ok,
    totals.refused, totals.busy, totals.failed))
end
"""


def drift_process_of(worker: int) -> int | None:
    """The drift process the worker started, if it runs."""
    # Children are listed per thread: the one that started it is not the main one.
    children = [c for task in Path(f"/proc/{worker}/task").iterdir()
                for c in (task / "children").read_text().split()]  # fmt: skip
    for child in children:
        try:
            if b"api.app.operations.drift_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except FileNotFoundError:
            continue
    return None


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))]


def predict_latencies(url: str, payload: bytes, seconds: float) -> list[float]:
    """One client, one house per request, back to back: each request's latency (ms)."""
    latencies = []
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post("/api/v1/predict", content=payload, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return latencies


@pytest.mark.timeout(120)
def test_a_drift_flood_does_not_slow_predictions_nor_grow_memory(
    tmp_path: Path, test_houses: list[dict[str, Any]]
) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("REQUIRE_WRK") == "1":
            pytest.fail("wrk is not installed (REQUIRE_WRK=1)")
        pytest.skip("wrk is not installed (Debian package wrk)")
    script = tmp_path / "drift.lua"
    script.write_text(FLOOD_SCRIPT)
    house = {k: v for k, v in test_houses[0].items() if v is not None}
    payload = json.dumps({"inputs": [house]}).encode()
    env = {"PREDICTION_LOG_PATH": str(tmp_path / "log.sqlite3")}
    samples: list[tuple[str, int, int]] = []  # (phase, worker KiB, drift process KiB)
    phase = "warm-up"
    done = threading.Event()
    with running_server(tmp_path / "server.log", workers=1, env=env) as server:
        # One worker: uvicorn serves in the process it was started as.
        assert workers_of(server) == []
        worker = server.process.pid
        for _ in range(2):  # about 2,900 logged houses to compare
            response = httpx.post(
                f"{server.url}/api/v1/predict", json={"inputs": test_houses}, timeout=60
            )
            assert response.status_code == 200
        time.sleep(1)  # the log writer stores them
        first = httpx.get(f"{server.url}/api/v1/drift", timeout=60)
        assert first.status_code == 200 and first.json()["houses"] > 2000, first.text

        def sample() -> None:
            while not done.wait(0.2):
                child = drift_process_of(worker)
                try:
                    child_kib = status_kib(child, "VmRSS") if child is not None else 0
                except (FileNotFoundError, LookupError):  # gone, or a zombie
                    child_kib = 0
                samples.append((phase, status_kib(worker, "VmRSS"), child_kib))

        sampler = threading.Thread(target=sample)
        sampler.start()
        alone: list[float] = []
        flooded: list[float] = []
        # The control: the same flood of the cheapest route. Any flood of one
        # worker slows what it also answers (16 connections share its loop);
        # what is tested is that /drift costs it no more than /health does,
        # its reports computed elsewhere, whatever the machine's speed.
        control: list[float] = []
        totals = [0, 0, 0, 0, 0]  # requests, 200, 422, 503, other
        try:
            predict_latencies(server.url, payload, 1)  # warm-up
            # Alone and flooded in turns, so that load from outside this test
            # (other jobs on the machine) weighs on both alike.
            for _ in range(ROUNDS):
                phase = "alone"
                alone += predict_latencies(server.url, payload, PROBE_SECONDS)
                phase = "flood"
                flood = subprocess.Popen(
                    [*pinned(1), "wrk", "-t2", f"-c{FLOOD_CONNECTIONS}",
                     f"-d{PROBE_SECONDS + 1}s", "-s", str(script), server.url + "/api/v1/drift"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                time.sleep(0.5)  # the flood at full strength
                flooded += predict_latencies(server.url, payload, PROBE_SECONDS)
                out, err = flood.communicate(timeout=60)
                match = re.search(r"^DRIFT (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
                assert flood.returncode == 0 and match, f"wrk failed:\n{out}\n{err}"
                totals = [a + int(b) for a, b in zip(totals, match.groups(), strict=True)]
                phase = "control"
                cheap = subprocess.Popen(
                    [*pinned(1), "wrk", "-t2", f"-c{FLOOD_CONNECTIONS}",
                     f"-d{PROBE_SECONDS + 1}s", server.url + "/api/v1/health"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                time.sleep(0.5)
                control += predict_latencies(server.url, payload, PROBE_SECONDS)
                out, err = cheap.communicate(timeout=60)
                assert cheap.returncode == 0, f"wrk failed:\n{out}\n{err}"
            phase = "after"
            time.sleep(2)
        finally:
            done.set()
            sampler.join()
    requests, ok, refused, busy, failed = totals
    median_alone, median_flood = statistics.median(alone), statistics.median(flooded)
    median_control = statistics.median(control)
    worker_kib = {p: max(w for q, w, _ in samples if q == p) for p in ("alone", "flood", "after")}
    child_peak = max(c for _, _, c in samples)
    FIGURES["drift flood (16 connections, 1 worker, ~2,900 logged houses)"] = (
        f"{requests} /drift requests in {ROUNDS} x {PROBE_SECONDS + 1} s: {ok} 200, "
        f"{refused} 422, "
        f"{busy} 503, {failed} other; /predict median {median_alone:.2f} ms alone "
        f"({len(alone)} requests, p90 {quantile(alone, 0.9):.2f} ms), {median_flood:.2f} ms "
        f"under the flood ({len(flooded)}, p90 {quantile(flooded, 0.9):.2f} ms), "
        f"{median_control:.2f} ms under as heavy a flood of /health; "
        f"worker peak RSS {worker_kib['alone'] / 1024:.0f} MiB alone, "
        f"{worker_kib['flood'] / 1024:.0f} MiB in the flood, {worker_kib['after'] / 1024:.0f} "
        f"MiB after; drift process peak {child_peak / 1024:.0f} MiB"
    )
    assert median_flood <= 1.5 * median_control, FIGURES
    # Memory: bounded whatever is sent (it used to grow by 650 MB in 15 s).
    assert worker_kib["flood"] <= worker_kib["alone"] + 32 * 1024, FIGURES
    assert child_peak <= 256 * 1024, FIGURES
    assert failed == 0, "answers other than 200, 422 and 503"
    assert ok > 0 and refused > 0
    assert requests > 1000, "not a flood"
