"""One artifact prices the same bits whatever BLAS kernel OpenBLAS picks.

Training goes through BLAS, and each kernel sums in its own order, so a model
retrained on another kernel differs in the last bits (README, "The artifact and
reproducibility"). Pricing must not depend on the kernel: a row sum in numpy,
not BLAS's ``X @ coef`` (which differs between these two kernels), is what lets
the release rehearsal demand that the installed wheel price exactly as the
artifact the run tested, and every process on a machine (tests, API, container)
price alike whatever kernel it gets. OpenBLAS reads ``OPENBLAS_CORETYPE`` once,
when it loads, so each kernel gets a fresh process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pandas as pd
import pytest

from regression_model.predict import make_prediction

#: SSE3 and AVX2 kernels: every x86-64 machine this runs on has both, and they
#: differ from each other and from AVX-512's SkylakeX, the default on many.
KERNELS = ("Prescott", "Haswell")

_PRICE_TEST_CSV = """
import json
from threadpoolctl import threadpool_info
from regression_model.config.core import get_config
from regression_model.predict import make_prediction
from regression_model.data import load_dataset

houses = load_dataset(get_config().app.test_data_file)
prices = make_prediction(input_data=houses)["predictions"]
kernels = sorted(
    str(lib.get("architecture"))
    for lib in threadpool_info()
    if lib.get("internal_api") == "openblas"
)
print(json.dumps({"kernels": kernels, "prices": [None if p is None else p.hex() for p in prices]}))
"""


def _hex(prices: list[float | None]) -> list[str | None]:
    return [None if p is None else p.hex() for p in prices]


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine().lower() not in {"x86_64", "amd64"},
    reason="the forced kernels are x86-64 OpenBLAS kernels",
)
def test_one_artifact_prices_the_same_bits_on_every_blas_kernel(test_data: pd.DataFrame) -> None:
    here = _hex(make_prediction(input_data=test_data)["predictions"])
    assert len(here) == 1459 and None not in here
    seen: dict[str, tuple[str, ...]] = {}
    for kernel in KERNELS:
        done = subprocess.run(
            [sys.executable, "-c", _PRICE_TEST_CSV],
            env={**os.environ, "OPENBLAS_CORETYPE": kernel},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        seen[kernel] = tuple(result["kernels"])
        moved = sum(a != b for a, b in zip(here, result["prices"], strict=True))
        assert moved == 0, f"with OPENBLAS_CORETYPE={kernel}, {moved} houses price differently"
    # The variable took effect: OpenBLAS ran a different kernel each time.
    assert all(seen.values()) and len(set(seen.values())) == len(KERNELS), seen
