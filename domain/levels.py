"""What each pressure level does, as a table the pressure machine reads."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from swictation.domain.model import ActionKind, Level, Tuning


@attrs.frozen
class LevelRule:
    """One row of the level table.

    `cleanup` is carried out on entering the level and again every `reapply_s` while it lasts
    (None: only on entry); `offload_to_target` offloads until usage is back under the
    target; `forecast_offloads` lets the forecast offload early; `restores` lets models come
    back; `poll_ceiling_s` caps the poll interval while the level lasts (None: no cap).
    """

    cleanup: ActionKind | None
    offload_to_target: bool
    forecast_offloads: bool
    restores: bool
    poll_ceiling_s: float | None
    reapply_s: float | None


LevelTable = Mapping[Level, LevelRule]


def level_table(tuning: Tuning | None = None) -> LevelTable:
    """The default policy's table; cadences come from `tuning`."""
    every = (tuning or Tuning()).reapply_s
    return {
        Level.NORMAL: LevelRule(None, False, True, True, None, None),
        Level.WARNING: LevelRule(ActionKind.COLLECT_GARBAGE, False, True, True, None, every),
        Level.CRITICAL: LevelRule(ActionKind.AGGRESSIVE_CLEANUP, False, True, True, 1.0, every),
        Level.EMERGENCY: LevelRule(ActionKind.AGGRESSIVE_CLEANUP, True, True, False, 0.5, every),
        Level.SHUTDOWN: LevelRule(None, False, False, False, None, None),
    }


# The original add-on: cleanup on entry only, offloads on entering EMERGENCY, no forecast,
# restores on the way back to NORMAL.
LEGACY_TABLE: LevelTable = {
    Level.NORMAL: LevelRule(None, False, False, True, None, None),
    Level.WARNING: LevelRule(ActionKind.COLLECT_GARBAGE, False, False, False, None, None),
    Level.CRITICAL: LevelRule(ActionKind.AGGRESSIVE_CLEANUP, False, False, False, None, None),
    Level.EMERGENCY: LevelRule(None, True, False, False, None, None),
    Level.SHUTDOWN: LevelRule(None, False, False, False, None, None),
}


# On the CPU after giving up the GPU: nothing of ours is on the card, so no level cleans up,
# offloads, restores or polls faster; the levels still say how full the card is.
WATCH_TABLE: LevelTable = {
    level: LevelRule(None, False, False, False, None, None) for level in Level
}
