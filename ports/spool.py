"""The spool port: utterances kept from the moment they are queued until their text is
delivered, and speech written ahead while it is still being spoken."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class OpenUtterance(Protocol):
    """Speech still being spoken, appended as it arrives."""

    path: Path
    start_sample: int
    bytes: int  # written so far

    def append(self, samples: Any) -> None: ...

    def discard(self) -> None:
        """Closes and removes it (the whole utterance has been put, or it is abandoned)."""

    def split(self, at_sample: int, path: Path) -> OpenUtterance:
        """Cuts it at stream sample `at_sample`: what comes after goes on in a new open
        utterance at `path`, and this one is closed, holding only what came before (kept as
        it is, to be removed with `Spool.done` once its words are typed)."""
        ...


class Spool(Protocol):
    written_bytes: int
    lost_s: float  # audio that could be kept nowhere

    def put(self, samples: Any, label: str = "", twin: Path | None = None) -> Path | None:
        """Keeps one whole utterance (`twin`: the open utterance it was written ahead to);
        None when it can be kept nowhere."""

    def open(self, start_sample: int) -> OpenUtterance | None:
        """Speech starting at `start_sample`, to append to; None when nothing can be written."""

    def split(self, opened: OpenUtterance, at_sample: int) -> tuple[Path, OpenUtterance] | None:
        """`opened` cut at `at_sample` (`OpenUtterance.split`): the file now holding what
        came before, and the open utterance going on after; None when it cannot be done
        (nothing changed then)."""

    def backlog(self) -> list[Path]:
        """What earlier runs left undelivered, oldest first."""

    def seconds(self, path: Path) -> float:
        """About how much audio a kept utterance holds, without reading it (a restart types a
        short backlog before newer speech)."""

    def load(self, path: Path) -> Any | None:
        """The samples of one kept utterance; None when it cannot be read."""

    def done(self, path: Path) -> None:
        """Its text is delivered: forgotten."""

    def line_open(self, is_open: bool) -> None:
        """Remembers whether the output is in the middle of a line (words typed early, the
        end of their line not yet), across a crash."""

    def was_line_open(self) -> bool:
        """Whether an earlier run stopped in the middle of a line."""
