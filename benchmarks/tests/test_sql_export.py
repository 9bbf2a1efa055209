"""The SQL export's benchmark keeps working: a tiny run writes its JSON, and
DuckDB's prices and ranges agree with ``predict``'s. No figure is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.sql_export import main


def test_a_tiny_run_writes_its_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rows", "2000", "--output", str(tmp_path), "--scratch", str(tmp_path)]) == 0
    assert "DuckDB vs predict" in capsys.readouterr().out
    results = json.loads((tmp_path / "sql_export.json").read_text())
    assert {run["label"] for run in results["runs"]} == {"predict", "DuckDB SQL", "DuckDB floor"}
    assert results["summary"]["floor_speedup"] > 0
    agreement = results["agreement"]
    assert agreement["priced_by_one_only"] == 0
    assert agreement["max_relative_difference"] <= 1e-12
    assert agreement["ranges"] == [
        "SalePrice_low_80",
        "SalePrice_high_80",
        "SalePrice_low_90",
        "SalePrice_high_90",
    ]
    assert agreement["ranges_given_by_one_only"] == 0
    assert agreement["max_relative_difference_ranges"] <= 1e-12
    # the scratch input is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sql_export.json"]
