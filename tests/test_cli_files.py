"""The files the commands write and read, on hostile ground: devices, FIFOs
and symlinks as outputs, outputs that are the command's own inputs (the
prediction log), file-system failures, and malformed inputs that must be one
line of error, never a traceback (regression_model.output_files, the batch
readers)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regression_model.batch import readers
from regression_model.cli import main
from regression_model.data import dataset_path
from regression_model.output_files import OutputError, replacing, write_text
from regression_model.predict import make_prediction


@pytest.fixture(scope="module")
def houses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five houses of test.csv, as written there."""
    path = tmp_path_factory.mktemp("houses") / "houses.csv"
    lines = dataset_path("test.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:6]), encoding="utf-8")
    return path


def device(path: Path, minor: int) -> Path:
    """A character device of the memory driver (3: null, 7: full) made here,
    never the machine's own; skipped where devices cannot be made."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("making a device needs root")
    return path


def reading(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    return reader, got


def predict(source: Path | str, output: Path | str, *extra: str) -> int:
    return main(["predict", "--input", str(source), "--output", str(output), "--quiet", *extra])


# -- outputs: devices, FIFOs, symlinks ----------------------------------------


def test_a_device_output_is_written_not_replaced(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    null = device(tmp_path / "null", 3)
    assert predict(houses, null, "--output-format", "csv") == 0
    assert stat.S_ISCHR(null.stat().st_mode)
    full = device(tmp_path / "full", 7)
    capsys.readouterr()
    assert predict(houses, full, "--output-format", "csv") == 1
    err = capsys.readouterr().err
    assert f"error: cannot write {full}: No space left on device; nothing written" in err
    assert stat.S_ISCHR(full.stat().st_mode)
    assert main(["export", "sql", "--output", str(full)]) == 2
    assert stat.S_ISCHR(full.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null"]


def test_a_fifo_output_is_streamed_to_its_reader(houses: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "prices"
    os.mkfifo(fifo)
    reader, got = reading(fifo)
    assert predict(houses, fifo, "--output-format", "csv") == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert got[0].decode().startswith("Id,SalePrice,") and got[0].count(b"\n") == 6


def test_a_symlink_output_replaces_the_file_it_points_to(houses: Path, tmp_path: Path) -> None:
    real, link = tmp_path / "real.csv", tmp_path / "link.csv"
    real.write_text("old\n")
    link.symlink_to(real.name)
    assert predict(houses, link) == 0
    assert link.is_symlink() and os.readlink(link) == real.name
    assert len(pd.read_csv(real)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


def test_an_input_reached_by_a_symlink_or_a_hard_link_is_refused(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sym.csv").symlink_to(houses)
    os.link(houses, tmp_path / "hard.csv")
    before = houses.read_bytes()
    for output in ("sym.csv", "hard.csv"):
        assert predict(houses, tmp_path / output) == 1
        assert "is also the input" in capsys.readouterr().err
    assert houses.read_bytes() == before


# -- outputs: the file system fails -------------------------------------------


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "query.sql"
    target.write_text("the good query\n")
    with pytest.raises(RuntimeError), replacing(target) as handle:
        handle.write("half a quer")
        raise RuntimeError("stopped")
    assert target.read_text() == "the good query\n"
    assert [p.name for p in tmp_path.iterdir()] == ["query.sql"]


def test_a_path_that_cannot_hold_files_is_an_output_error() -> None:
    with pytest.raises(OutputError, match=r"^cannot write /proc/x\.json: No such file"):
        write_text("/proc/x.json", "{}")


def test_file_system_failures_are_one_line_errors(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert predict(houses, "/proc/x.csv") == 1
    assert capsys.readouterr().err == (
        "error: cannot write /proc/x.csv: No such file or directory; nothing written\n"
    )
    for output, message in (
        (tmp_path, f"error: {tmp_path} is a directory: give a file name\n"),
        (tmp_path / "no" / "q.sql", f"directory {tmp_path / 'no'} does not exist\n"),
    ):
        assert main(["export", "sql", "--output", str(output)]) == 2
        assert capsys.readouterr().err.endswith(message)
    assert list(tmp_path.iterdir()) == []


# -- outputs: never the prediction log ----------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.sqlite3"
    assert main(["log-migrate", "--database-url", str(path)]) == 0
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["market-data", "--output", "{log}"],
        ["drift", "--json", "{log}", "--plot", "none"],
        ["drift", "--plot", "{log}"],
        ["drift", "--json", "{log}-wal", "--plot", "none"],
        ["performance", "--json", "{log}", "--plot", "none"],
        ["performance", "--plot", "{log}"],
    ],
)
def test_no_output_overwrites_the_log(
    command: list[str], log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = log.read_bytes()
    capsys.readouterr()
    args = [part.format(log=log) for part in command]
    assert main([*args, "--database-url", str(log)]) == 2
    err = capsys.readouterr().err
    assert "is also the prediction log" in err and "write it elsewhere" in err
    assert log.read_bytes() == before


def test_a_log_that_cannot_be_migrated_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.sqlite3"
    (tmp_path / "log.sqlite3.migrate-lock").mkdir()  # as a read-only disk refuses it
    assert main(["log-migrate", "--database-url", str(log)]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot migrate the prediction log: {log}.migrate-lock: Is a directory\n"
    )


def test_an_unknown_plot_format_is_refused_before_the_log_is_read(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, plot = tmp_path / "drift.json", tmp_path / "drift.sqlite3"
    command = ["drift", "--database-url", str(log), "--json", str(summary), "--plot", str(plot)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"cannot write {plot}: a plot is written as" in err and "not 'sqlite3'" in err
    assert not summary.exists() and not plot.exists()


# -- inputs -------------------------------------------------------------------


def test_a_bad_row_in_the_first_block_is_an_error_with_its_line(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = houses.read_text().splitlines(keepends=True)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("".join(lines[:2]) + lines[2].replace(",", ";", 3) + "".join(lines[3:]))
    assert predict(ragged, tmp_path / "out.csv") == 1
    assert capsys.readouterr().err.startswith(
        f"error: {ragged}, line 3: expected 80 fields, found 77 (the file is truncated"
    )
    latin = tmp_path / "latin.csv"
    latin.write_bytes(houses.read_bytes().replace(b",NAmes,", b",N\xe9mes,", 1))
    assert predict(latin, tmp_path / "out.csv") == 1
    assert capsys.readouterr().err == (
        f"error: {latin}, line 2, column Neighborhood: the cell is not UTF-8 text; "
        "nothing written\n"
    )
    old_mac = tmp_path / "old_mac.csv"
    old_mac.write_bytes(houses.read_bytes().replace(b"\n", b"\r"))
    assert predict(old_mac, tmp_path / "out.csv") == 1
    assert "lines end with CR only: convert them to LF" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_a_fifo_input_is_streamed(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "houses.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(houses.read_bytes()), daemon=True)
    writer.start()
    assert predict(fifo, tmp_path / "out.csv") == 0
    writer.join(timeout=30)
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5
    os.mkfifo(tmp_path / "houses.parquet")  # never opened: Parquet needs a file
    assert predict(tmp_path / "houses.parquet", tmp_path / "out.csv") == 1
    assert "houses.parquet is a FIFO or a device: Parquet is read from a file" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("cell", ["NAN", "Nan", "+nan", "-NAN", "nan(1)", "nan", "NA", ""])
def test_nan_spellings_get_make_predictions_verdict(
    cell: str, houses: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(houses, dtype=str, keep_default_na=False)
    frame.loc[0, "GrLivArea"] = cell
    source = tmp_path / "houses.csv"
    frame.to_csv(source, index=False)
    assert predict(source, tmp_path / "out.csv") in (0, 3)
    got = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    want = make_prediction(input_data=pd.read_csv(source))
    refused = [e["message"] for e in want["errors"] or [] if e["row"] == 0]
    if cell in ("nan", "NA", ""):  # pandas' missing markers: imputed
        assert refused == [] and got["errors"][0] == ""
        assert float(got["SalePrice"][0]) == want["predictions"][0]
    else:
        assert refused == [f"expected a number, got text {cell!r}"]
        assert got["errors"][0] == f"GrLivArea: expected a number, got text {cell!r}"


def test_damaged_parquet_is_a_file_error(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = pa.Table.from_pandas(pd.read_csv(houses), preserve_index=False)
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(table.replace_schema_metadata({b"pandas": b'{"columns": "\xc9"}'}), damaged)
    assert predict(damaged, tmp_path / "out.csv") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {damaged} is not a readable Parquet file: its pandas metadata")
    listed = tmp_path / "listed.parquet"
    ids = pa.array([[i] for i in range(5)])
    pq.write_table(table.set_column(0, "Id", ids), listed)
    assert predict(listed, tmp_path / "out.csv") == 1
    assert "column Id holds list<" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def _with_a_long_label(houses: Path, path: Path, *, before: int, megabytes: int) -> Path:
    """``houses``' rows, repeated to ``before`` rows, then one whose
    Neighborhood is ``megabytes`` MB long (its own line: longer than a block
    of the CSV reader), then the first row again."""
    header, *rows = houses.read_text().splitlines(keepends=True)
    long_row = rows[0].replace(",NAmes,", "," + "N" * (megabytes << 20) + ",", 1)
    assert long_row != rows[0]
    body = [rows[i % len(rows)] for i in range(before)]
    path.write_text(header + "".join(body) + long_row + rows[0])
    return path


@pytest.mark.parametrize("before", [0, 6000])  # in the first block; after many
def test_a_line_longer_than_a_block_is_its_rows_error(
    before: int, houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 3 MB label (a line of three blocks) made the whole file unreadable
    ("straddling object straddles two block boundaries", no line): the file
    is read again in larger blocks, that row refused as make_prediction
    refuses it, the others priced."""
    source = _with_a_long_label(houses, tmp_path / "long.csv", before=before, megabytes=3)
    assert predict(source, tmp_path / "out.csv") == 3
    got = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(got) == before + 2
    assert got["errors"][before] == "Neighborhood: label is longer than 40 characters"
    assert (got["errors"].drop(index=before) == "").all()
    want = make_prediction(input_data=pd.read_csv(source).iloc[before:])
    assert [e["message"] for e in want["errors"] or []] == ["label is longer than 40 characters"]
    assert float(got["SalePrice"][before + 1]) == want["predictions"][1]
    capsys.readouterr()


def test_a_line_longer_than_the_most_read_is_an_error_with_its_line(
    houses: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _with_a_long_label(houses, tmp_path / "long.csv", before=10, megabytes=5)
    monkeypatch.setattr(readers, "_MAX_BLOCK", 2 << 20)  # a line spans at most two blocks
    assert predict(source, tmp_path / "out.csv") == 1
    assert capsys.readouterr().err == (
        f"error: {source}, line 12: the line is longer than 2 MB, the most read in one "
        "line; nothing written\n"
    )
    fifo = tmp_path / "streamed.csv"  # a stream is not read again: refused
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()), daemon=True)
    writer.start()
    assert predict(fifo, tmp_path / "out.csv") == 1
    writer.join(timeout=30)
    assert capsys.readouterr().err == (
        f"error: {fifo}, line 12: the line is longer than 1 MB, the most read in one line "
        "from a stream; give it as a file (a line of up to 2 MB is read from a file); "
        "nothing written\n"
    )
    assert not (tmp_path / "out.csv").exists()
