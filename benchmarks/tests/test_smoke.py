"""The benchmark keeps working: its short version runs and writes its JSON and
PNG. No figure is asserted here (they are reported, never tested)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.load import find_wrk

ROOT = Path(__file__).resolve().parents[2]


def run_benchmarks(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_smoke_run_writes_its_json_and_png(tmp_path: Path) -> None:
    done = run_benchmarks("--smoke", "--output", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "targets (reported, never asserted)" in done.stdout

    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["meta"]["smoke"] is True
    assert results["in_process"]["runs"]
    assert results["in_process"]["peak_memory"]
    assert {(c["app"], c["workers"]) for c in results["api"]["cold_start"]} == {
        ("bare", 1),
        ("api", 1),
        ("bare", 2),
        ("api", 2),
    }
    assert len(results["api"]["memory"]) == 4
    if find_wrk() is None:
        assert "wrk is not installed" in done.stdout
        assert results["api"]["load"] == []
    else:
        # 2 apps x (1 worker x 3 runs + 2 workers x 2 runs)
        assert len(results["api"]["load"]) == 10
    assert len(results["targets"]) == 8
    assert any("shadow challenger" in t["target"] for t in results["targets"])
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_wrk_require_bench_fails_at_once(tmp_path: Path) -> None:
    done = run_benchmarks(
        "--smoke",
        "--wrk",
        str(tmp_path / "no-wrk"),
        "--output",
        str(tmp_path),
        env={"REQUIRE_BENCH": "1"},
    )
    assert done.returncode == 2
    assert "wrk is not installed" in done.stderr
    assert "REQUIRE_BENCH=1" in done.stderr
    assert not (tmp_path / "bench.json").exists()
