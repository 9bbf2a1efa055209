"""Scoring on Dask: a real LocalCluster (2 worker processes on loopback)
prices exactly as the in-process path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from regression_model.batch import score_file  # noqa: E402
from regression_model.batch.dask_scoring import _MODELS, predict_dask, score_files  # noqa: E402
from regression_model.batch.resample import resampled_houses, write_houses  # noqa: E402
from regression_model.config.core import get_config  # noqa: E402

pytestmark = pytest.mark.slow
ROWS = 6_000
RANGES = ["SalePrice_low_80", "SalePrice_high_80", "SalePrice_low_90", "SalePrice_high_90"]
PRICES = ["SalePrice", *RANGES]


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def houses() -> pd.DataFrame:
    return pd.concat(list(resampled_houses(ROWS, seed=11, bad_share=0.03)))


@pytest.fixture(scope="module")
def in_process(houses: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The streamed, in-process scorer's output for the same houses (as CSV)."""
    directory = tmp_path_factory.mktemp("in-process")
    write_houses(directory / "houses.csv", ROWS, seed=11, bad_share=0.03)
    score_file(
        str(directory / "houses.csv"), str(directory / "prices.csv"), config=get_config().model
    )
    return read_csv(directory / "prices.csv")


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=dict.fromkeys(PRICES, ""))


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same columns, ids, reasons, and prices and ranges to the last bit."""
    got = got.reset_index(drop=True)
    assert list(got.columns) == ["Id", *PRICES, "errors"]
    assert got["Id"].astype("int64").tolist() == want["Id"].tolist()
    for name in PRICES:
        prices = got[name].to_numpy(dtype="float64", na_value=np.nan)
        assert np.array_equal(prices, want[name].to_numpy(dtype="float64"), equal_nan=True), name
    assert got["errors"].fillna("").tolist() == want["errors"].tolist()


def test_predict_dask_on_two_worker_processes_is_identical(
    client: distributed.Client, houses: pd.DataFrame, in_process: pd.DataFrame
) -> None:
    ddf = dd.from_pandas(houses, npartitions=5)
    scored = predict_dask(ddf, client=client)
    assert scored.npartitions == 5 and list(scored.columns) == ["Id", *PRICES, "errors"]
    result = scored.compute()
    assert result.index.equals(houses.index)
    assert_same(result, in_process)
    # Both workers scored, each with the model it was given once (by the plugin).
    workers = client.run(lambda: sorted(_MODELS))
    assert len(workers) == 2
    assert all(len(tokens) == 1 for tokens in workers.values())


def test_the_model_is_not_in_the_partitions_tasks(
    client: distributed.Client, houses: pd.DataFrame
) -> None:
    import pickle

    scored = predict_dask(dd.from_pandas(houses.head(100), npartitions=2), client=client)
    graph = scored.__dask_graph__()
    sizes = [len(pickle.dumps(task)) for key, task in dict(graph).items() if "score" in str(key)]
    assert sizes and max(sizes) < 5_000  # the tables alone are about 20 KB


def test_unknown_columns_are_named_or_refused_on_dask(
    client: distributed.Client, houses: pd.DataFrame
) -> None:
    from regression_model.batch.dask_scoring import UnknownColumnsWarning
    from regression_model.predict import make_prediction

    frame = houses.head(60).rename(columns={"GrLivArea": "GrLivArae"})
    ddf = dd.from_pandas(frame, npartitions=3)
    named = "column 'GrLivArae': unknown field, ignored — did you mean GrLivArea?"
    with pytest.warns(UnknownColumnsWarning, match=named):
        scored = predict_dask(ddf, client=client, allow_missing_columns=True)
    prices = scored.compute()["SalePrice"].to_numpy(dtype="float64", na_value=np.nan)
    expected = np.array(make_prediction(input_data=frame)["predictions"], dtype="float64")
    assert np.array_equal(prices, expected, equal_nan=True)
    strict = predict_dask(ddf, client=client, allow_missing_columns=True, strict=True).compute()
    assert strict["SalePrice"].isna().all()
    refused = "GrLivArae: unknown field, refused (strict mode) — did you mean GrLivArea?"
    assert strict["errors"].str.contains(refused, regex=False).all()


def test_predict_dask_writes_the_ranges_asked_for(
    client: distributed.Client, houses: pd.DataFrame, in_process: pd.DataFrame
) -> None:
    ddf = dd.from_pandas(houses.head(300), npartitions=3)
    scored = predict_dask(ddf, client=client, coverages=[0.8]).compute()
    assert list(scored.columns) == [
        "Id",
        "SalePrice",
        "SalePrice_low_80",
        "SalePrice_high_80",
        "errors",
    ]
    for name in ("SalePrice_low_80", "SalePrice_high_80"):
        want = in_process[name].head(300).to_numpy(dtype="float64")
        assert np.array_equal(scored[name].to_numpy(dtype="float64"), want, equal_nan=True)
    with pytest.raises(ValueError, match=r"no price range at coverage 0\.5"):
        predict_dask(ddf, client=client, coverages=[0.5])


def test_predict_dask_without_id_uses_the_index(client: distributed.Client) -> None:
    frame = pd.concat(list(resampled_houses(40, seed=2))).drop(columns="Id")
    frame.index = frame.index + 1000
    result = predict_dask(dd.from_pandas(frame, npartitions=3), client=client).compute()
    assert result["Id"].tolist() == list(range(1000, 1040))


def test_cli_path_reads_directories_and_globs_identically(
    client: distributed.Client, in_process: pd.DataFrame, tmp_path: Path
) -> None:
    config = get_config().model
    parts = tmp_path / "csv-parts"
    parts.mkdir()
    whole = tmp_path / "houses.csv"
    write_houses(whole, ROWS, seed=11, bad_share=0.03)
    lines = whole.read_text().splitlines(keepends=True)
    for number, start in enumerate(range(1, len(lines), 1_700)):
        (parts / f"part-{number}.csv").write_text(lines[0] + "".join(lines[start : start + 1_700]))
    parquet_parts = tmp_path / "parquet-parts"
    parquet_parts.mkdir()
    frame = pd.read_csv(whole, dtype={"Id": "int64"})
    frame = frame[~frame["LotArea"].eq("large")]  # Parquet columns hold one type
    for number, start in enumerate(range(0, len(frame), 2_500)):
        frame.iloc[start : start + 2_500].to_parquet(parquet_parts / f"part-{number}.parquet")
    address = client.scheduler.address
    runs = {
        "csv dir -> parquet": (str(parts), tmp_path / "out.parquet"),
        "csv glob -> csv": (str(parts / "part-*.csv"), tmp_path / "out-csv"),
        "parquet dir -> csv": (str(parquet_parts), tmp_path / "from-parquet.csv"),
    }
    for name, (source, target) in runs.items():
        counts = score_files(source, str(target), address=address, config=config)
        assert target.is_dir(), name
        if target.suffix == ".parquet":
            got = pd.read_parquet(target)
        else:
            got = pd.concat(
                read_csv(p)
                for p in sorted(target.glob("*.csv"), key=lambda p: int(p.stem.split("-")[-1]))
            )
        want = (
            in_process
            if name.startswith("csv")
            else in_process[~in_process["errors"].str.contains("got text")]
        )
        assert_same(got, want.reset_index(drop=True))
        assert counts.read == len(want) and counts.priced == want["SalePrice"].notna().sum()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_dask_local_and_bad_addresses(tmp_path: Path) -> None:
    source = tmp_path / "houses.csv"
    write_houses(source, 500, seed=4)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "regression_model",
            "predict",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "prices"),
            "--dask",
            "local",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "priced 500 of 500 rows" in done.stderr
    assert len(pd.read_csv(next((tmp_path / "prices").glob("*.csv")))) == 500
    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "regression_model",
            "predict",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "again"),
            "--dask",
            "tcp://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert unreachable.returncode == 2, unreachable.stderr
    assert "cannot reach the Dask cluster at tcp://127.0.0.1:9" in unreachable.stderr
    assert not (tmp_path / "again").exists()


def test_without_dask_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['distributed'] = None; from regression_model.cli import main; "
        "sys.exit(main(['predict', '--input', 'x.csv', '--output', 'y', '--dask', 'local']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "pip install 'ames-regression-model[dask]'" in done.stderr


def test_a_truncated_csv_is_an_error_and_leaves_nothing(
    client: distributed.Client, tmp_path: Path
) -> None:
    whole = tmp_path / "houses.csv"
    write_houses(whole, 2_000, seed=5)
    cut = tmp_path / "cut.csv"
    cut.write_bytes(whole.read_bytes()[:300_000])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "regression_model",
            "predict",
            "--input",
            str(cut),
            "--output",
            str(tmp_path / "prices"),
            "--dask",
            client.scheduler.address,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "error: cannot read the input: CSV parse error: Expected 80 columns" in done.stderr
    assert "nothing written" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.csv", "houses.csv"]
