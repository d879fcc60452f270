"""A control-socket server in its own process, driven by the tests over stdin.

`serve PATH`: a ControlServer with an echo handler; prints `ready`, then obeys one word per
line on stdin: `fill` (use up every file descriptor, print `full`), `release` (give them back,
print `released`); at the end of stdin it stops and exits 0.

`foreign PATH UID`: listens on PATH as another user (binds as root, then setuid(UID), then
listens, so SO_PEERCRED names UID), prints `ready`, answers one request and exits.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import sys


def serve(path: str) -> int:
    from swictation.adapters.control_socket import ControlServer

    server = ControlServer(path, lambda request: {"ok": True, "echo": request["cmd"]})
    server.start()
    print("ready", flush=True)
    held: list[int] = []
    for line in sys.stdin:
        word = line.strip()
        if word == "fill":
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
            print("full", flush=True)
        elif word == "release":
            while held:
                os.close(held.pop())
            print("released", flush=True)
    server.stop()
    return 0


def foreign(path: str, uid: int) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o777)
    os.setuid(uid)
    listener.listen(4)
    print("ready", flush=True)
    conn, _ = listener.accept()
    with conn:
        conn.recv(4096)
        conn.sendall(json.dumps({"ok": True, "listening": True}).encode() + b"\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2]))
    sys.exit(foreign(sys.argv[2], int(sys.argv[3])))
