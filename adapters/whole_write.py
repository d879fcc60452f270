"""Appending a record in one write, or not at all: a short write is cut back before raising."""

from __future__ import annotations

import contextlib
import errno
import os


def append_whole(fd: int, data: bytes, offset: int | None = None) -> None:
    """Writes `data` at `offset` (default: the end of the file) in one call.

    A disk that fills mid-record writes part of it and says so: the part is cut off again
    (the file ends where it did), so a retry or the next record never follows half a line.
    """
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_END)
    written = os.write(fd, data)
    if written != len(data):
        with contextlib.suppress(OSError):
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        raise OSError(errno.ENOSPC, "No space left on device (short write)")
