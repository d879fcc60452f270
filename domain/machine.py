"""The pressure state machine: five levels on `transitions`, SHUTDOWN final."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import EventData, Machine

from swictation.domain.model import Level

_LIVE = [level.name for level in Level if level is not Level.SHUTDOWN]


class PressureMachine:
    """Holds the current level; moves only through declared transitions.

    The level is computed arithmetically by the policy; `move_to` fires the single trigger
    only when the target differs, so a steady level costs no trigger at all.
    """

    # Both are set on the instance by transitions.Machine.
    state: str
    trigger: Callable[..., bool]

    def __init__(self, initial: Level = Level.NORMAL) -> None:
        # The most severe destination is listed first: the first passing condition wins.
        transitions: list[dict[str, Any]] = [
            {
                "trigger": "change",
                "source": _LIVE,
                "dest": level.name,
                "conditions": [self._is_requested],
            }
            for level in sorted(Level, reverse=True)
        ]
        # Anything else (SHUTDOWN asked to leave, a no-op) is an internal no-op transition.
        transitions.append({"trigger": "change", "source": "*", "dest": None})
        self._machine = Machine(
            model=self,
            states=[*_LIVE, {"name": Level.SHUTDOWN.name, "final": True}],
            transitions=transitions,
            initial=initial.name,
            auto_transitions=False,
            send_event=True,
        )

    @property
    def level(self) -> Level:
        return Level[self.state]

    def move_to(self, target: Level) -> bool:
        """Move to `target` if allowed; returns whether the level changed."""
        if target is self.level:
            return False
        before = self.state
        self.trigger("change", target=target)
        return self.state != before

    def _is_requested(self, event: EventData) -> bool:
        transition = event.transition
        return transition is not None and event.kwargs["target"].name == transition.dest
