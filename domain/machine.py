"""The pressure state machine: five levels on `transitions`, SHUTDOWN final, reading the
level table on entering a level and while it lasts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import EventData, Machine

from swictation.domain.levels import LevelRule, LevelTable, level_table
from swictation.domain.model import Action, Level

_LIVE = [level.name for level in Level if level is not Level.SHUTDOWN]
_GRADED = [Level.WARNING, Level.CRITICAL, Level.EMERGENCY]


class PressureMachine:
    """Holds the current level; moves only through its named triggers.

    `escalate` goes up to any higher live level at once, `relax` goes down one level,
    `give_up` goes from EMERGENCY to the final SHUTDOWN. The level is computed arithmetically
    by the policy and `move_to` fires triggers only when the target differs, so a steady
    level costs no trigger at all.
    """

    # Set on the instance by transitions.Machine.
    state: str
    trigger: Callable[..., bool]

    def __init__(self, table: LevelTable | None = None, initial: Level = Level.NORMAL) -> None:
        self.table: LevelTable = table or level_table()
        self._level = initial
        self._entered = True
        self._last_applied: float | None = None
        self._every: float | None = None  # the backed-off re-apply wait (None: the rule's)
        self._usage_at: float | None = None  # usage at the last cleanup
        transitions: list[dict[str, Any]] = [
            # The most severe destination is listed first: the first passing condition wins.
            {
                "trigger": "escalate",
                "source": [lv.name for lv in Level if lv < level],
                "dest": level.name,
                "conditions": [self._is_requested],
            }
            for level in sorted(_GRADED, reverse=True)
        ]
        transitions += [
            {"trigger": "relax", "source": level.name, "dest": Level(level - 1).name}
            for level in _GRADED
        ]
        transitions.append(
            {"trigger": "give_up", "source": Level.EMERGENCY.name, "dest": Level.SHUTDOWN.name}
        )
        for trigger in ("escalate", "relax", "give_up"):
            # Anything else (SHUTDOWN asked to leave, NORMAL to relax) changes nothing.
            transitions.append({"trigger": trigger, "source": "*", "dest": None})
        self._machine = Machine(
            model=self,
            states=[*_LIVE, {"name": Level.SHUTDOWN.name, "final": True}],
            transitions=transitions,
            initial=initial.name,
            auto_transitions=False,
            send_event=True,
            after_state_change=[self._on_enter],
        )

    @property
    def level(self) -> Level:
        return self._level

    @property
    def rule(self) -> LevelRule:
        return self.table[self.level]

    def move_to(self, target: Level) -> bool:
        """Move to `target` through the allowed triggers; returns whether the level changed."""
        before = self.level
        if target is before:
            return False
        if target > before:
            self.trigger("escalate", target=min(target, Level.EMERGENCY))
            if target is Level.SHUTDOWN:
                self.trigger("give_up")
        else:
            while self.level > target:
                current = self.level
                self.trigger("relax")
                if self.level is current:
                    break
        return self.level is not before

    def due_cleanup(self, t: float, usage: float | None = None, rise: float = 0.0) -> Action | None:
        """The level's cleanup, when entering it or when its re-apply cadence has come round;
        usage more than `rise` above the last cleanup's brings the plain cadence back."""
        rule = self.rule
        if rule.cleanup is None:
            self._entered = False
            return None
        entered = self._entered
        self._entered = False
        if not entered:
            if rule.reapply_s is None or self._last_applied is None:
                return None
            if usage is not None and self._usage_at is not None and usage - self._usage_at > rise:
                self._every = None
            if t - self._last_applied < (self._every or rule.reapply_s):
                return None
        self._last_applied = t
        self._usage_at = usage
        why = "entered" if entered else "still"
        return Action(rule.cleanup, reason=f"{why} {self.level.name}")

    def cleaned(self, freed_mib: float) -> None:
        """What the last cleanup freed: nothing doubles the wait before the next (up to the
        rule's `reapply_max_s`); something brings the plain cadence back."""
        rule = self.rule
        if rule.reapply_s is None or rule.reapply_max_s is None or freed_mib > 0:
            self._every = None
            return
        self._every = min(2 * (self._every or rule.reapply_s), rule.reapply_max_s)

    def _on_enter(self, event: EventData) -> None:
        # A cleanup is due on entering a higher level; stepping down re-applies on cadence.
        transition = event.transition
        if transition is None or transition.dest is None:
            return  # an internal transition: nothing entered
        self._level = Level[self.state]
        self._every = None  # a new level: its own cadence, from the start
        if Level[transition.dest] > Level[transition.source]:
            self._entered = True
        elif self.rule.cleanup is None:
            self._last_applied = None

    def _is_requested(self, event: EventData) -> bool:
        transition = event.transition
        return transition is not None and event.kwargs["target"].name == transition.dest
