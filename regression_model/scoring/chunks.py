"""Large inputs in chunks: a frame is validated and scored a chunk at a time,
several chunks at once in threads, so memory stays bounded and the cores
are used; a row's verdict never depends on its chunk."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from regression_model.scoring.validation import InputData

#: Large frames are validated and scored this many rows at a time, so memory
#: stays bounded; a row's result never depends on its chunk.
CHUNK_ROWS = 65_536
#: Threads pricing the chunks of a large frame.
SCORING_THREADS = min(4, os.cpu_count() or 1)

Priced = TypeVar("Priced")


def in_order(function: Callable[[Any], Priced], chunks: list[Any]) -> Iterator[Priced]:
    """``function`` of each chunk, in order. Several chunks are priced at once
    in threads (NumPy, pandas and pyarrow release the GIL for most of the
    work), at most one more than there are threads, so memory stays bounded.
    A chunk's result never depends on the others, so the bits are the same."""
    if len(chunks) == 1 or SCORING_THREADS == 1:
        yield from map(function, chunks)
        return
    with ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="scoring") as pool:
        pending: deque[Future[Priced]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(function, chunk))
            if len(pending) > SCORING_THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def chunks_of(input_data: InputData) -> list[tuple[int, Any]]:
    """(first row, rows) pieces of the input: frames in bounded chunks."""
    length = len(input_data) if hasattr(input_data, "iloc") else 0
    if length <= CHUNK_ROWS:
        return [(0, input_data)]
    return [
        (start, input_data.iloc[start : start + CHUNK_ROWS])  # type: ignore[union-attr]
        for start in range(0, length, CHUNK_ROWS)
    ]
