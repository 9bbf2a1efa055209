"""Writing a command's output file whole, or not at all: one rule for every
file the package writes where a user asks (``predict --output``, ``export
sql --output``, ``market-data --output``, ``drift`` and ``performance``'s
``--json`` and ``--plot``).

- A regular file (or a new one) is written under a temporary name beside it
  and renamed over it when complete, so an error or an interruption leaves
  the old file, or nothing, under its name. A symlink is followed: the file
  it points to is replaced, the link stays.
- Anything else that exists under the name (a character or block device, a
  FIFO) is written directly, as a shell's ``>`` does: replacing it would
  put a regular file where a device was.
- Before anything is written, the target is refused when it is a directory,
  when its directory does not exist, or when it is the same file as one of
  the command's inputs (the input file, the prediction log): writing it
  would destroy what is being read.
- Every failure of the file system (permission, a read-only or full file
  system, a path that cannot hold files) is an :class:`OutputError` naming
  the file and the reason, never a bare ``OSError``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any


class OutputError(Exception):
    """The output cannot be written where asked; the message says which file
    and why."""


def cannot_write(target: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The error for ``exc``, raised by the file system writing ``target``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write {os.fspath(target)}: {reason}")


def check_target(target: str | os.PathLike[str], inputs: Mapping[str, str] | None = None) -> None:
    """Refuse ``target`` (an :class:`OutputError`) when it is a directory, its
    directory does not exist, or it is the same file as one of ``inputs``
    (their paths, each with what it is: ``{"log.sqlite3": "the prediction
    log"}``; ``-``, stdin, is left out)."""
    path = Path(target)
    if path.is_dir():
        raise OutputError(f"{target} is a directory: give a file name")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {target}: directory {path.parent} does not exist")
    for source, what in (inputs or {}).items():
        if source == "-":
            continue
        if _same_file(path, Path(source)):
            raise OutputError(f"{target} is also {what} ({source}): write it elsewhere")


def _same_file(target: Path, source: Path) -> bool:
    try:
        return os.path.samefile(target, source)
    except OSError:  # one of them does not exist (yet): compare where they lead
        return Path(os.path.realpath(target)) == Path(os.path.realpath(source))


@contextlib.contextmanager
def replacing(
    target: str | os.PathLike[str],
    *,
    inputs: Mapping[str, str] | None = None,
    binary: bool = False,
) -> Iterator[IO[Any]]:
    """A handle for the whole content of ``target`` (text: UTF-8, newlines
    as written; or ``binary``), checked first (:func:`check_target`). A
    regular file appears under its name only when the block completes;
    an exception in the block leaves it as it was."""
    check_target(target, inputs)
    try:
        existing = os.stat(target)  # through symlinks
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise cannot_write(target, exc) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        try:  # a device or a FIFO: written in place, never replaced
            handle = _open(target, binary=binary)
        except OSError as exc:
            raise cannot_write(target, exc) from None
        with _closing(handle, target):
            yield handle
        return
    real = Path(os.path.realpath(target))  # a symlink's file is replaced, not the link
    try:
        descriptor, partial = tempfile.mkstemp(
            dir=real.parent, prefix=f".{real.name}.", suffix=".partial"
        )
    except OSError as exc:
        raise cannot_write(target, exc) from None
    try:
        handle = _open(descriptor, binary=binary)
        with _closing(handle, target):
            yield handle
        try:
            os.chmod(partial, 0o666 & ~_umask())
            os.replace(partial, real)
        except OSError as exc:
            raise cannot_write(target, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _open(file: int | str | os.PathLike[str], *, binary: bool) -> IO[Any]:
    if binary:
        return open(file, "wb")
    return open(file, "w", newline="", encoding="utf-8")


@contextlib.contextmanager
def _closing(handle: IO[Any], target: str | os.PathLike[str]) -> Iterator[None]:
    """Close ``handle`` after the block; an error flushing what is buffered
    (a full disk) is the target's."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            handle.close()
        raise
    try:
        handle.close()
    except OSError as exc:
        raise cannot_write(target, exc) from None


def write_text(
    target: str | os.PathLike[str],
    text: str,
    *,
    inputs: Mapping[str, str] | None = None,
) -> None:
    """``text`` as the whole content of ``target``, as :func:`replacing` writes."""
    with replacing(target, inputs=inputs) as handle:
        try:
            handle.write(text)
        except OSError as exc:
            raise cannot_write(target, exc) from None


def _umask() -> int:
    # Read by setting it (there is no other way); nothing else runs meanwhile.
    current = os.umask(0)
    os.umask(current)
    return current


def figure_format(target: str | os.PathLike[str]) -> str:
    """The format matplotlib writes ``target`` in, told by its extension (png
    without one); an unknown extension is an :class:`OutputError` listing
    the known ones, raised before any work (needs matplotlib)."""
    from matplotlib.figure import Figure

    suffix = Path(target).suffix.lower().lstrip(".")
    known = Figure().canvas.get_supported_filetypes()
    if suffix and suffix not in known:
        raise OutputError(
            f"cannot write {os.fspath(target)}: a plot is written as {', '.join(sorted(known))} "
            f"(told by the extension), not {suffix!r}"
        )
    return suffix or "png"


def save_figure(
    figure: Any, target: str | os.PathLike[str], *, inputs: Mapping[str, str] | None = None
) -> None:
    """A matplotlib ``figure`` as the whole content of ``target``, in the
    format of its extension, as :func:`replacing` writes."""
    kind = figure_format(target)
    with replacing(target, inputs=inputs, binary=True) as handle:
        try:
            figure.savefig(handle, format=kind, dpi=100)
        except OSError as exc:
            raise cannot_write(target, exc) from None
