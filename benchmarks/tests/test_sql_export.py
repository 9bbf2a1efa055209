"""The SQL export's benchmark keeps working: a tiny run writes its JSON, and
DuckDB's prices agree with ``predict``'s. No figure is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_writes_its_json(tmp_path: Path) -> None:
    command = ["-m", "benchmarks.sql_export", "--rows", "2000", "--output", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, *command, "--scratch", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "DuckDB vs predict" in done.stdout
    results = json.loads((tmp_path / "sql_export.json").read_text())
    assert {run["label"] for run in results["runs"]} == {"predict", "DuckDB SQL"}
    agreement = results["agreement"]
    assert agreement["priced_by_one_only"] == 0
    assert agreement["max_relative_difference"] <= 1e-12
    # the scratch input is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sql_export.json"]
