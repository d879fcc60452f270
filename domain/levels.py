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
    back; `poll_ceiling_s` caps the poll interval while the level lasts (None: no cap). A
    cleanup that freed nothing doubles the wait before the next, up to `reapply_max_s`
    (None: no back-off).
    """

    cleanup: ActionKind | None
    offload_to_target: bool
    forecast_offloads: bool
    restores: bool
    poll_ceiling_s: float | None
    reapply_s: float | None
    reapply_max_s: float | None = None


LevelTable = Mapping[Level, LevelRule]


def level_table(tuning: Tuning | None = None) -> LevelTable:
    """The default policy's table; cadences come from `tuning`."""
    tuning = tuning or Tuning()
    every, most = tuning.reapply_s, max(tuning.reapply_s, tuning.reapply_max_s)
    warning, aggressive = ActionKind.COLLECT_GARBAGE, ActionKind.AGGRESSIVE_CLEANUP
    return {
        Level.NORMAL: LevelRule(None, False, True, True, None, None),
        Level.WARNING: LevelRule(warning, False, True, True, None, every, most),
        Level.CRITICAL: LevelRule(aggressive, False, True, True, 1.0, every, most),
        # EMERGENCY offloads; its cleanup keeps the plain cadence while it lasts.
        Level.EMERGENCY: LevelRule(aggressive, True, True, False, 0.5, every),
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
