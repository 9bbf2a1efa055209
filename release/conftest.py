"""Fixtures shared by the tests of ``tox -e release``: one private index, one
publication and one mirror per run (``index_fixtures.py``).

These tests keep the source tree off ``sys.path`` (the package under test is
the installed one), so the shared test helpers (``testkit/``) are loaded here
by their path and registered under their name, before ``index_fixtures`` and
the tests import them: that puts ``testkit`` on the import path and nothing
else of the tree. (``testkit`` needs only the standard library, which is all
this environment is sure to have.)"""

import importlib.util
import sys
from pathlib import Path

TESTKIT = Path(__file__).resolve().parents[1] / "testkit"


def _load_testkit() -> None:
    if "testkit" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "testkit", TESTKIT / "__init__.py", submodule_search_locations=[str(TESTKIT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["testkit"] = module
    spec.loader.exec_module(module)


_load_testkit()

from index_fixtures import (  # noqa: E402, F401 (pytest finds fixtures by name)
    mirrored_dependencies,
    private_index,
    published,
    timings,
    workdir,
)
