"""Co-tenants in the one status: `swictation status`, the log line and the final report."""

from __future__ import annotations

from swictation.application.entrypoints.presenters import status_line, status_text

STATUS = {
    "listening": True,
    "level": "EMERGENCY",
    "usage": 0.961,
    "used_mib": 7872.0,
    "total_mib": 8192.0,
    "models": {},
    "utterances": 2,
    "queued": 0,
    "spooled": 0,
    "tenants": [
        {
            "name": "ollama",
            "kind": "ollama",
            "url": "http://127.0.0.1:11434",
            "reachable": True,
            "busy": None,
            "held_mib": 6144.0,
            "asks": 1,
            "freed_mib": 6144.0,
        },
        {
            "name": "comfyui",
            "kind": "comfyui",
            "url": "http://127.0.0.1:8188",
            "reachable": True,
            "busy": True,
            "held_mib": None,
            "asks": 0,
            "freed_mib": 0.0,
        },
        {
            "name": "ollama#2",
            "kind": "ollama",
            "url": "http://127.0.0.1:11435",
            "reachable": False,
            "busy": None,
            "held_mib": None,
            "asks": 0,
            "freed_mib": 0.0,
        },
    ],
}


def test_each_co_tenant_is_a_line_of_status():
    lines = status_text(STATUS).splitlines()
    assert lines[-3:] == [
        "co-tenant:  ollama at http://127.0.0.1:11434, idle, holds 6,144 MiB, asked 1x, "
        "freed 6,144 MiB",
        "co-tenant:  comfyui at http://127.0.0.1:8188, busy, asked 0x",
        "co-tenant:  ollama#2 at http://127.0.0.1:11435, not answering, asked 0x",
    ]


def test_the_report_line_ends_with_the_co_tenants():
    line = status_line("final report", STATUS)
    assert line.endswith(
        "co-tenant ollama at http://127.0.0.1:11434, idle, holds 6,144 MiB, asked 1x, "
        "freed 6,144 MiB; co-tenant comfyui at http://127.0.0.1:8188, busy, asked 0x; "
        "co-tenant ollama#2 at http://127.0.0.1:11435, not answering, asked 0x"
    )


def test_no_co_tenants_no_lines():
    quiet = {**STATUS, "tenants": []}
    assert "co-tenant" not in status_text(quiet)
