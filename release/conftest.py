"""Fixtures shared by the tests of ``tox -e release``: one private index, one
publication and one mirror per run (``index_fixtures.py``)."""

from index_fixtures import (  # noqa: F401 (pytest finds fixtures by name)
    mirrored_dependencies,
    private_index,
    published,
    timings,
    workdir,
)
