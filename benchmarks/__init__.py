"""Benchmarks of the package and the API, run in one go on one machine.

``tox -e bench`` (or ``python -m benchmarks``) measures, side by side in the same
run, ``make_prediction`` per engine and batch size, peak memory, the API under
``wrk`` next to a bare FastAPI app, cold start and memory per worker; it prints
a table and writes ``benchmarks/results/bench.json`` and ``bench.png``. See
``benchmarks/README.md``.
"""
