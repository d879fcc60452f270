"""A `transitions` machine built from a table of (trigger, sources, destination) rows over an
enum's states: each trigger's conditions and before-callbacks looked up by name, and a
catch-all internal transition per trigger, so a trigger with no matching row changes nothing."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transitions import EventData, Machine

Row = tuple[str, tuple[enum.Enum, ...], enum.Enum]


def triggers(rows: Sequence[Row]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name, _, _ in rows))


def table_machine(
    model: object,
    states: type[enum.Enum],
    rows: Sequence[Row],
    initial: enum.Enum,
    entered: Callable[[EventData], None] | None,
    conditions: Mapping[str, Sequence[Callable[[EventData], bool]]] | None = None,
    before: Mapping[str, Sequence[Callable[[EventData], None]]] | None = None,
) -> Machine:
    """The machine for `model` (a plain class: transitions sets `state` and `trigger` on it);
    `entered`, where given, is called after every change of state, with the event
    (`send_event`)."""
    conditions = conditions or {}
    before = before or {}
    transitions: list[dict[str, Any]] = [
        {
            "trigger": trigger,
            "source": [s.value for s in sources],
            "dest": dest.value,
            "conditions": list(conditions.get(trigger, ())),
            "before": list(before.get(trigger, ())),
        }
        for trigger, sources, dest in rows
    ]
    transitions += [{"trigger": t, "source": "*", "dest": None} for t in triggers(rows)]
    return Machine(
        model=model,
        states=[s.value for s in states],
        transitions=transitions,
        initial=initial.value,
        auto_transitions=False,
        send_event=True,
        after_state_change=[] if entered is None else [entered],
    )
