"""Mermaid text for the guard's state machines, read from the machines themselves."""

from __future__ import annotations

from transitions import Machine

from swictation.domain.gpu_mode import GpuModeMachine, Tenure
from swictation.domain.machine import PressureMachine
from swictation.domain.model import Tuning
from swictation.domain.residency import ModelResidency, Residency


def mermaid(machine: Machine) -> str:
    """A `stateDiagram-v2` of every declared transition, labelled with its trigger; internal
    transitions (the catch-alls) are left out."""
    lines = ["stateDiagram-v2", f"    [*] --> {machine.initial}"]
    seen: set[str] = set()
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                if transition.dest is None:
                    continue
                line = f"    {source} --> {transition.dest}: {trigger}"
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
    for name, state in machine.states.items():
        if getattr(state, "final", False):
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"


def pressure_diagram() -> str:
    return mermaid(PressureMachine()._machine)


def residency_diagram() -> str:
    return mermaid(ModelResidency("model", Tuning(), 0.0, Residency.ON_GPU)._machine)


def gpu_mode_diagram() -> str:
    return mermaid(GpuModeMachine(120.0, Tenure())._machine)
