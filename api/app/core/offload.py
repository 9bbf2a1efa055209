"""Where CPU-bound work goes when it is too big for the event loop.

Large batches are scored, and large bodies parsed, in a small thread pool of
their own rather than in the framework's 40-thread pool: the work holds the
GIL, so more threads would not make it faster, and each thread that allocates
gets its own malloc arena, which grows the worker's resident memory.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Two threads: one batch is scored while the next one's body is parsed.
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cpu-bound")


async def run_cpu_bound(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in the CPU-bound pool, awaited."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(function, *args, **kwargs))
