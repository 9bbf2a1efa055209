"""Streaming ``regression-model predict``: exactness against make_prediction,
counts, formats, bad files, interruptions."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regression_model import __version__
from regression_model.batch import columns as columns_module
from regression_model.batch import run as run_module
from regression_model.batch import score_file
from regression_model.batch.columns import _numbers_or_text, numeric_columns
from regression_model.batch.resample import resampled_houses, write_houses
from regression_model.cli import main
from regression_model.config.core import get_config
from regression_model.predict import make_prediction

ROWS = 20_000
CHUNK = 1_500
#: The price's range at each coverage the model was calibrated for (80 % and 90 %).
RANGES = ["SalePrice_low_80", "SalePrice_high_80", "SalePrice_low_90", "SalePrice_high_90"]
PRICES = ["SalePrice", *RANGES]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regression_model", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def expected(frame: pd.DataFrame) -> pd.DataFrame:
    """What the CLI must write: make_prediction of the whole frame, in memory
    (a range's columns named from its coverage, here, as a whole percentage)."""
    result = make_prediction(input_data=frame)
    messages: dict[int, list[str]] = {}
    for error in result["errors"] or []:
        messages.setdefault(error["row"], []).append(f"{error['field']}: {error['message']}")
    ranges: dict[str, list[float]] = {name: [] for name in RANGES}
    for row in result["intervals"]:
        for name in RANGES:  # NaN where not priced
            ranges[name].append(np.nan)
        for interval in row or []:
            percent = round(interval["coverage"] * 100)
            ranges[f"SalePrice_low_{percent}"][-1] = interval["low"]
            ranges[f"SalePrice_high_{percent}"][-1] = interval["high"]
    return pd.DataFrame(
        {
            "Id": frame["Id"].to_numpy(),
            "SalePrice": [np.nan if p is None else p for p in result["predictions"]],
            **ranges,
            "errors": ["; ".join(messages.get(i, [])) for i in range(len(frame))],
        }
    )


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame["errors"] = frame["errors"].fillna("")
    else:
        frame = pd.read_csv(path, keep_default_na=False, na_values=dict.fromkeys(PRICES, ""))
    frame["Id"] = frame["Id"].astype("int64")
    frame[PRICES] = frame[PRICES].astype("float64")
    return frame


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == ["Id", *PRICES, "errors"]
    assert got["Id"].tolist() == want["Id"].tolist()
    # to the last bit: CSV prices are written as the shortest round-trip text
    for name in PRICES:
        assert np.array_equal(got[name].to_numpy(), want[name].to_numpy(), equal_nan=True), name
    assert got["errors"].astype(str).tolist() == want["errors"].tolist()


def leftovers(directory: Path, *keep: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p not in keep)


@pytest.fixture(scope="module")
def houses(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A CSV much larger than the chunk size, 2 % of rows with a bad value."""
    path = tmp_path_factory.mktemp("batch") / "houses.csv"
    write_houses(path, ROWS, seed=7, bad_share=0.02)
    frame = pd.concat(list(resampled_houses(ROWS, seed=7, bad_share=0.02)))
    return path, frame


@pytest.fixture(scope="module")
def want(houses: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    return expected(houses[1])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_large_file_scores_exactly_as_make_prediction(
    houses: tuple[Path, pd.DataFrame],
    want: pd.DataFrame,
    tmp_path: Path,
    suffix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, _ = houses
    output = tmp_path / f"prices{suffix}"
    code = main(
        ["predict", "--input", str(source), "--output", str(output), "--chunk-rows", str(CHUNK)]
    )
    priced = int(want["SalePrice"].notna().sum())
    assert 0 < priced < ROWS
    assert code == 3  # some rows were rejected
    stderr = capsys.readouterr().err
    assert (
        f"priced {priced} of {ROWS} rows with model {__version__}; "
        f"{ROWS - priced} rejected (see the errors column)"
    ) in stderr
    assert_same(read_output(output), want)
    assert leftovers(tmp_path) == [output.name]


def test_bad_rows_carry_their_reasons(want: pd.DataFrame) -> None:
    reasons = want.loc[want["SalePrice"].isna(), "errors"]
    assert reasons.str.len().gt(0).all()
    found = "\n".join(reasons)
    for reason in (
        "GrLivArea: -5 is out of range",
        "OverallQual: 11 is out of range",
        "YearBuilt: 1500 is out of range",
        "KitchenQual: unknown code 'Excellent'",
        "MSSubClass: unknown code 999;",
        "LotArea: expected a number, got text 'large'",
    ):
        assert reason in found
    assert want.loc[want["SalePrice"].notna(), "errors"].eq("").all()


def test_each_priced_row_has_its_ranges_and_only_priced_rows_do(want: pd.DataFrame) -> None:
    priced = want["SalePrice"].notna()
    assert want.loc[~priced, RANGES].isna().all().all()
    ranges = want.loc[priced]
    assert ranges[RANGES].notna().all().all()
    assert (ranges["SalePrice_low_90"] <= ranges["SalePrice_low_80"]).all()
    assert (ranges["SalePrice_low_80"] < ranges["SalePrice"]).all()
    assert (ranges["SalePrice"] < ranges["SalePrice_high_80"]).all()
    assert (ranges["SalePrice_high_80"] <= ranges["SalePrice_high_90"]).all()


def test_coverage_chooses_the_ranges_written(
    houses: tuple[Path, pd.DataFrame], want: pd.DataFrame, tmp_path: Path
) -> None:
    source = tmp_path / "few.csv"
    pd.read_csv(houses[0], nrows=200, dtype=str, keep_default_na=False).to_csv(source, index=False)
    output = tmp_path / "prices.parquet"
    argv = ["predict", "--input", str(source), "--output", str(output), "--coverage", "0.9"]
    assert main(argv) in (0, 3)
    got = pd.read_parquet(output)
    assert list(got.columns) == [
        "Id",
        "SalePrice",
        "SalePrice_low_90",
        "SalePrice_high_90",
        "errors",
    ]
    for name in ("SalePrice_low_90", "SalePrice_high_90"):
        assert np.array_equal(got[name], want[name].head(200), equal_nan=True)
    unknown = run_cli(
        "predict",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "x.csv"),
        "--coverage",
        "0.95",
    )
    assert unknown.returncode == 2
    assert "no price range at coverage 0.95: this model has ranges at 0.8, 0.9" in unknown.stderr
    assert "nothing written" in unknown.stderr and not (tmp_path / "x.csv").exists()
    not_a_coverage = run_cli("predict", "--input", str(source), "--coverage", "90")
    assert not_a_coverage.returncode == 2 and "must be between 0 and 1" in not_a_coverage.stderr


def test_the_chunk_size_never_changes_the_output(
    houses: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source = tmp_path / "few.csv"
    pd.read_csv(houses[0], nrows=300, dtype=str, keep_default_na=False).to_csv(source, index=False)
    outputs = []
    for rows in (1, 3, 7, 300, 65_536):  # 1 and 3: the row-by-row validation
        output = tmp_path / f"out-{rows}.csv"
        score_file(str(source), str(output), config=get_config().model, chunk_rows=rows)
        outputs.append(output.read_bytes())
    assert all(output == outputs[0] for output in outputs)


def test_csv_parquet_round_trips_keep_ids_and_prices(tmp_path: Path) -> None:
    config = get_config().model
    csv_in, parquet_in = tmp_path / "in.csv", tmp_path / "in.parquet"
    write_houses(csv_in, 5_000, seed=3, bad_share=0.01)
    write_houses(parquet_in, 5_000, seed=3, bad_share=0.01)
    runs = {}
    for source in (csv_in, parquet_in):
        for suffix in (".csv", ".parquet"):
            output = tmp_path / f"{source.suffix[1:]}-to{suffix}"
            score_file(str(source), str(output), config=config, chunk_rows=999)
            runs[output.name] = read_output(output)
    reference = runs["csv-to.csv"]
    assert reference["Id"].tolist() == list(range(1, 5_001))
    # Parquet holds no text in numerical columns: those rows differ by design.
    text = reference["errors"].str.contains("got text")
    for name, got in runs.items():
        assert got["Id"].tolist() == reference["Id"].tolist(), name
        same = ~text if name.startswith("parquet") else slice(None)
        assert_same(got[same].reset_index(drop=True), reference[same].reset_index(drop=True))
    schema = pq.read_schema(tmp_path / "parquet-to.parquet")
    assert schema.names == ["Id", *PRICES, "errors"]
    assert [str(t) for t in schema.types] == ["int64", *["double"] * len(PRICES), "string"]
    assert pq.read_schema(tmp_path / "csv-to.parquet").field("Id").type == "string"


def test_without_an_id_column_rows_are_numbered(tmp_path: Path) -> None:
    source, output = tmp_path / "anonymous.csv", tmp_path / "prices.csv"
    frame = pd.concat(list(resampled_houses(50, seed=1))).drop(columns="Id")
    frame.to_csv(source, index=False)
    score_file(str(source), str(output), config=get_config().model, chunk_rows=7)
    prices = pd.read_csv(output)
    assert prices["Id"].tolist() == list(range(50))
    result = make_prediction(input_data=frame)
    assert prices["SalePrice"].tolist() == result["predictions"]
    assert prices["SalePrice_high_90"].tolist() == [row[1]["high"] for row in result["intervals"]]


def test_stdin_to_stdout(houses: tuple[Path, pd.DataFrame], want: pd.DataFrame) -> None:
    head = b"".join(houses[0].open("rb").readlines()[:101])
    done = subprocess.run(
        [sys.executable, "-m", "regression_model", "predict", "--input", "-", "--chunk-rows", "9"],
        input=head,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode in (0, 3), done.stderr
    from io import StringIO

    got = pd.read_csv(
        StringIO(done.stdout.decode()),
        keep_default_na=False,
        na_values=dict.fromkeys(PRICES, ""),
    )
    assert_same(got, want.head(100))


def test_an_empty_table_gives_the_header(tmp_path: Path) -> None:
    source, output = tmp_path / "none.csv", tmp_path / "none-out.parquet"
    source.write_text(",".join(pd.read_csv(get_test_csv(), nrows=0).columns) + "\n")
    counts = score_file(str(source), str(output), config=get_config().model)
    assert (counts.read, counts.priced) == (0, 0)
    assert pq.read_table(output).num_rows == 0
    score_file(str(source), str(tmp_path / "none-out.csv"), config=get_config().model)
    assert (tmp_path / "none-out.csv").read_text() == ",".join(["Id", *PRICES, "errors"]) + "\n"


def get_test_csv() -> Path:
    from regression_model.data import dataset_path

    return dataset_path("test.csv")


def test_missing_columns_are_refused_unless_allowed(tmp_path: Path) -> None:
    source, output = tmp_path / "partial.csv", tmp_path / "prices.csv"
    pd.read_csv(get_test_csv(), nrows=20).drop(columns=["GrLivArea", "KitchenQual"]).to_csv(
        source, index=False
    )
    done = run_cli("predict", "--input", str(source), "--output", str(output))
    assert done.returncode == 1
    assert "lacks 2 of the model's 79 input columns: GrLivArea, KitchenQual" in done.stderr
    assert "--allow-missing-columns" in done.stderr and "optional: Id" in done.stderr
    assert leftovers(tmp_path, source) == []
    done = run_cli(
        "predict", "--input", str(source), "--output", str(output), "--allow-missing-columns"
    )
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(output)["SalePrice"].notna().all()


def _truncated(path: Path, source: Path) -> None:
    lines = source.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10_001]) + lines[10_001][:25])  # cut 25 bytes into a line


def _extra_field(path: Path, source: Path) -> None:
    lines = source.read_text().splitlines(keepends=True)
    lines[5000] = lines[5000].rstrip("\n") + ",surplus\n"
    path.write_text("".join(lines))


BAD_FILES = {
    # name: (make it, input name, message parts)
    "missing": (None, "nowhere.csv", ["nowhere.csv: no such file"]),
    "directory": ("dir", "folder.csv", ["is a directory", "--dask"]),
    "empty": (b"", "empty.csv", ["empty.csv is empty", "header"]),
    "blank": (b"\n\n", "blank.csv", ["is empty"]),
    "truncated": (
        _truncated,
        "cut.csv",
        ["cut.csv, line 10002: expected 80 fields, found", "truncated or malformed"],
    ),
    "malformed": (_extra_field, "extra.csv", ["line 5001: expected 80 fields, found 81"]),
    "not parquet": (b"Id,GrLivArea\n1,2\n", "fake.parquet", ["is not a Parquet file"]),
    "binary as csv": (b"PAR1\x15\x04\x15\xff\xfe\x00\x80", "binary.csv", ["not a CSV file"]),
    "unknown extension": (b"Id\n1\n", "houses.txt", ["cannot tell the format", "--input-format"]),
    "foreign columns": (
        b"name,price\nx,1\n",
        "other.csv",
        ["has none of the model's 79 input columns", "it has: name, price"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_clear_errors_and_leave_nothing(
    case: str, houses: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    make, name, messages = BAD_FILES[case]
    source = tmp_path / name
    if make == "dir":
        source.mkdir()
    elif isinstance(make, bytes):
        source.write_bytes(make)
    elif make is not None:
        make(source, houses[0])
    output = tmp_path / "prices.csv"
    done = run_cli(
        "predict", "--input", str(source), "--output", str(output), "--chunk-rows", "1000"
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    for message in messages:
        assert message in done.stderr
    assert "nothing written" in done.stderr
    assert leftovers(tmp_path, source) == []


def test_bad_output_places(houses: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    source = houses[0]
    (tmp_path / "folder.csv").mkdir()
    for output, message in (
        (tmp_path / "no" / "such" / "dir.csv", "does not exist"),
        (tmp_path / "folder.csv", "is a directory"),
        (tmp_path / "prices.json", "cannot tell the format"),
        (source, "is also the input"),
    ):
        done = run_cli("predict", "--input", str(source), "--output", str(output))
        assert done.returncode == 1 and message in done.stderr, done.stderr
    no_rows = run_cli("predict", "--input", str(source), "--chunk-rows", "0")
    assert no_rows.returncode == 2 and "--chunk-rows: must be at least 1" in no_rows.stderr
    parquet_to_stdout = run_cli("predict", "--input", str(source), "--output-format", "parquet")
    assert parquet_to_stdout.returncode == 1 and "only CSV" in parquet_to_stdout.stderr
    assert leftovers(tmp_path) == ["folder.csv"]


def test_without_pyarrow_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None; from regression_model.cli import main; "
        f"sys.exit(main(['predict', '--input', {str(get_test_csv())!r}, "
        f"'--output', {str(tmp_path / 'p.csv')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "pip install 'ames-regression-model[arrow]'" in done.stderr
    assert leftovers(tmp_path) == []


def test_progress_bar_shows_rows_per_second(
    houses: tuple[Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    score_file(
        str(houses[0]),
        str(tmp_path / "p.csv"),
        config=get_config().model,
        chunk_rows=5_000,
        progress=True,
    )
    bar = capsys.readouterr().err
    assert "rows/s" in bar and f"{ROWS / 1000:.0f}.0k/" in bar


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_no_output(
    signum: int, houses: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    output = tmp_path / "prices.csv"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regression_model",
            "predict",
            "--input",
            str(houses[0]),
            "--output",
            str(output),
            "--chunk-rows",
            "20",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    # Wait until the run is writing (its temporary file has content), then stop it.
    while time.monotonic() < deadline:
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        if partial and partial[0].stat().st_size > 0:
            break
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.05)
    else:
        pytest.fail("the run never started writing")
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert f"interrupted by {name} after " in stderr and "nothing written to" in stderr
    assert "Traceback" not in stderr
    done = int(stderr.split(" after ")[1].split(" rows")[0].replace(",", ""))
    assert 0 < done < ROWS
    assert leftovers(tmp_path) == []


def test_parquet_categoricals_score_as_plain_values(
    houses: tuple[Path, pd.DataFrame], want: pd.DataFrame, tmp_path: Path
) -> None:
    frame = pd.read_csv(houses[0], nrows=400, dtype={"LotArea": str})
    text = frame.select_dtypes(exclude="number").columns
    frame[text] = frame[text].astype("category")  # dictionary-encoded in Parquet
    source, output = tmp_path / "categorical.parquet", tmp_path / "prices.csv"
    frame.to_parquet(source)
    score_file(str(source), str(output), config=get_config().model, chunk_rows=150)
    assert_same(read_output(output), want.head(400))


def test_a_closed_stdout_stops_quietly(houses: tuple[Path, pd.DataFrame]) -> None:
    done = subprocess.run(
        f"{sys.executable} -m regression_model predict --input {houses[0]} --chunk-rows 100 "
        "| head -3; exit ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 141, done.stderr
    header = ",".join(["Id", *PRICES, "errors"]) + "\n"
    assert done.stdout.startswith(header) and len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr


# -- junk in numeric columns (the report's D19) --------------------------------

#: Text that looks like a number to the eye, or to a looser parser, and is
#: not one in pyarrow's syntax; and spellings it does read.
LOOKS_NUMERIC = ["1e", "1.2.3", "+-5", "0x10", "1_0", "e5", ".", "nan(", "infinit", "1e5.", "--5"]
IS_NUMERIC = ["+5", ".5", "5.", "1E+2", "1.e2", "+.5e-3", "00012", "inf", "-Infinity", "1e400"]


def test_junk_in_numeric_columns_gets_make_predictions_verdicts(tmp_path: Path) -> None:
    """Numeric cells of distinct text (as in a file of 100,000 such rows that
    took 77 s and 1.5 GB), some number-shaped: each row's errors, in order,
    and prices are make_prediction's of the houses with those cells as the
    package reads them (a number where pyarrow reads one, else the text)."""
    text = pd.read_csv(get_test_csv(), nrows=40, dtype=str, keep_default_na=False)
    typed = pd.read_csv(get_test_csv(), nrows=40)
    columns = sorted(c for c in numeric_columns(get_config().model) if c in text.columns)
    typed[columns] = typed[columns].astype(object)
    cells = LOOKS_NUMERIC + IS_NUMERIC
    for row in range(len(text)):
        if row % 5 == 4:  # a house as given: priced
            continue
        for number, column in enumerate(columns[: row + 1]):  # row 0: one junk cell
            cell = cells[(row + number) % len(cells)] if row % 3 else f"x{row}-{number}"
            text.loc[row, column] = cell
            typed.loc[row, column] = float(cell) if cell in IS_NUMERIC else cell
    source, output = tmp_path / "junk.csv", tmp_path / "prices.csv"
    text.to_csv(source, index=False)
    score_file(str(source), str(output), config=get_config().model, chunk_rows=17)
    want = expected(typed)
    assert want["errors"].str.contains("got text").sum() > 20
    assert want["SalePrice"].notna().sum() >= 8
    assert want["errors"].str.contains("must be a finite number").any()  # inf, 1e400
    assert_same(read_output(output), want)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789+-.eEinfINFtyTYaAN() x_\t", max_size=9)))
def test_cells_are_numbers_by_pyarrows_cast_alone(cells: list[str]) -> None:
    """The whole-column reading of cells is pyarrow's cast of each cell: a
    number where the cast reads one (not NaN), else the text."""
    got = _numbers_or_text(pa.array([*cells, None, "x"], pa.string()))
    assert len(got) == len(cells) + 2 and math.isnan(got[-2]) and got[-1] == "x"
    for cell, found in zip(cells, got, strict=False):
        assert _same_cell(found, _cast_alone(cell)), cell


def test_a_cell_of_a_numbers_shape_pyarrow_refuses_is_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Were the syntax looser than pyarrow's cast, each cell decides alone."""
    monkeypatch.setattr(columns_module, "_NUMBER", r"^[0-9.]+$")
    got = _numbers_or_text(pa.array(["1.2.3", "12", None, "x", "1.5"], pa.string()))
    assert got[0] == "1.2.3" and got[1] == 12.0 and math.isnan(got[2]) and got[3] == "x"
    assert type(got[4]) is float and got[4] == 1.5


def test_a_chunk_is_priced_and_written_in_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk priced a slice at a time (as one whose numbers hold text is)
    gives the same output and counts; only such a chunk is sliced."""
    source = tmp_path / "few.csv"
    write_houses(source, 200, seed=5, bad_share=0.2)
    config = get_config().model
    whole = tmp_path / "whole.csv"
    counts = score_file(str(source), str(whole), config=config, chunk_rows=150)
    frame = pd.DataFrame({"GrLivArea": [1500.0, None], "Neighborhood": ["NAmes", "x"]})
    numeric = numeric_columns(config)
    assert run_module._scored_rows(frame, numeric) == 2  # numbers: the chunk whole
    junk = frame.astype({"GrLivArea": object}).assign(GrLivArea=[1500.0, "x1"])
    assert run_module._scored_rows(junk, numeric) == run_module.SCORED_ROWS
    monkeypatch.setattr(run_module, "_scored_rows", lambda frame, numeric: 7)
    for suffix in (".csv", ".parquet"):
        sliced = tmp_path / f"sliced{suffix}"
        again = score_file(str(source), str(sliced), config=config, chunk_rows=150)
        assert (again.read, again.priced) == (counts.read, counts.priced) == (200, counts.priced)
        assert_same(read_output(sliced), read_output(whole))
    assert 0 < counts.priced < 200


def _cast_alone(cell: str) -> object:
    try:
        number = pc.cast(pa.array([cell]), pa.float64())[0].as_py()
    except pa.ArrowInvalid:
        return cell
    return cell if math.isnan(number) else number


def _same_cell(found: object, want: object) -> bool:
    return type(found) is type(want) and found == want
