"""The daemon's status in words: one list of parts, shown as the periodic log line, the final
report and `swictation status`. A new status field is one more part here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Status = Mapping[str, Any]


def _mib(value: Any, digits: int = 0) -> str:
    return f"{float(value):,.{digits}f} MiB"


def _memory(status: Status) -> str:
    usage = status.get("usage")
    if usage is None and status.get("memory_unknown"):
        return f"unknown ({status['memory_unknown']})"
    if usage is None:
        return f"{status.get('level')} (device unknown)"
    return (
        f"{status.get('level')} at {float(usage):.1%} "
        f"({float(status['used_mib']):,.0f} of {_mib(status['total_mib'])})"
    )


def _model(name: str, model: Mapping[str, Any]) -> str:
    fallback = " (CPU fallback)" if model.get("cpu_fallback") else ""
    return f"{name} on {model.get('placement')}, {_mib(model.get('size_mib', 0), 1)}{fallback}"


def _workers(workers: Mapping[str, Mapping[str, Any]]) -> str:
    shown = []
    for name, health in workers.items():
        text = f"{name} {health.get('state')}"
        if health.get("errors") or health.get("restarts"):
            text += f" ({health.get('errors')} errors, {health.get('restarts')} restarts)"
        shown.append(text)
    return ", ".join(shown)


def _tenant(tenant: Mapping[str, Any]) -> str:
    if tenant.get("reachable") is False:
        state = "not answering"
    else:
        state = "busy" if tenant.get("busy") else "idle"
    held = "" if tenant.get("held_mib") is None else f", holds {_mib(tenant['held_mib'])}"
    asked = f", asked {tenant.get('asks', 0)}x"
    if tenant.get("asks"):
        asked += f", freed {_mib(tenant.get('freed_mib', 0))}"
    return f"{tenant.get('name')} at {tenant.get('url')}, {state}{held}{asked}"


def _clock(epoch: Any) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(float(epoch)))


def _gpu(gpu: Mapping[str, Any]) -> str:
    """Whether the daemon holds the GPU: after a SHUTDOWN it dictates on the CPU."""
    mode, reason = gpu.get("mode"), gpu.get("reason")
    since = "" if gpu.get("since") is None else f" at {_clock(gpu['since'])}"
    if mode == "on_cpu":
        room = gpu.get("room_for_s")
        waiting = f"back to the GPU after {float(gpu['return_after_s']):.0f} s of room"
        waiting += f" (room for {float(room):.0f} s)" if room is not None else " (no room now)"
        return f"cpu (gave up the GPU{since}: {reason}; {waiting})"
    if mode == "returning":
        return f"cpu, returning to the GPU at the next gap in speech ({gpu.get('next_reason')})"
    if mode == "releasing":
        return f"gpu, giving it up at the next gap in speech ({gpu.get('next_reason')})"
    return f"gpu (back on it{since}: {reason})"


def status_parts(status: Status) -> list[tuple[str, str]]:
    """(label, text) for each part of a status reply, in the order shown."""
    parts = [
        ("listening", "yes" if status.get("listening") else "no"),
        ("memory", _memory(status)),
    ]
    top = status.get("top_processes") or []
    if top:
        parts.append(("top", ", ".join(f"{p['name']} {_mib(p['used_mib'])}" for p in top)))
    if status.get("gpu"):
        parts.append(("device", _gpu(status["gpu"])))
    parts.extend(("model", _model(n, m)) for n, m in (status.get("models") or {}).items())
    errors = status.get("errors") or {}
    failing = [f"{name} {e['failures']}" for name, e in errors.items() if e.get("failures")]
    if failing:
        parts.append(("errors", ", ".join(failing)))
    parts.append(
        (
            "utterances",
            f"{status.get('utterances')} (queued {status.get('queued')}, "
            f"spooled {status.get('spooled')})",
        )
    )
    lost, losses = status.get("capture_lost_blocks"), status.get("capture_device_losses")
    if lost or losses:
        parts.append(("capture", f"{lost} block(s) lost to overflow, device lost {losses} time(s)"))
    totals = status.get("cuda_errors") or {}
    if totals:
        parts.append(
            (
                "cuda errors",
                ", ".join(
                    f"{name} {c['errors']} ({c['fallbacks']} fallbacks)"
                    for name, c in totals.items()
                ),
            )
        )
    if status.get("output") is not None:
        parts.append(("output", str(status["output"])))
    if status.get("undelivered"):
        parts.append(
            ("undelivered", f"{status['undelivered']} in {status.get('undelivered_file')}")
        )
    workers = status.get("workers")
    if workers:
        parts.append(("workers", _workers(workers)))
    if status.get("latency_p50_s") is not None:
        parts.append(
            (
                "latency",
                f"p50 {float(status['latency_p50_s']):.2f} s, "
                f"p95 {float(status['latency_p95_s']):.2f} s",
            )
        )
    speculation = status.get("speculation") or {}
    if speculation.get("asked") or speculation.get("partial_passes"):
        text = (
            f"{speculation['asked']} advance transcriptions, {speculation['used']} used, "
            f"{speculation['wasted']} thrown away; {speculation['early_pieces']} typed early "
            f"({speculation['early_revised']} not begun by the final text)"
        )
        if speculation.get("partial_passes"):
            text += f"; {speculation['partial_passes']} passes over speech in progress"
        parts.append(("early text", text))
    parts.extend(("co-tenant", _tenant(t)) for t in status.get("tenants") or [])
    return parts


def status_text(status: Status) -> str:
    """`swictation status`: one part per line, labels aligned."""
    return "\n".join(f"{label + ':':<12}{text}" for label, text in status_parts(status))


def status_line(title: str, status: Status) -> str:
    """The log's periodic status and the final report: one line."""
    return f"{title}: " + "; ".join(f"{label} {text}" for label, text in status_parts(status))
