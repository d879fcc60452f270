"""Local HTTP servers that implement the documented endpoints of the programs we cooperate with
(Ollama, ComfyUI, llama.cpp's router, vLLM, LM Studio, Automatic1111, text-generation-webui),
with their state, so that the real clients can be driven over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MIB = 1024 * 1024

Reply = tuple[int, Any]


class FakeProgram:
    """One program's API; `requests` holds (method, path, decoded body) in arrival order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        self.asked = threading.Event()  # set by the first request that asks to release
        self.refuse_posts: int | None = None  # an HTTP status to answer every POST with

    def handle(self, method: str, path: str, body: Any) -> Reply:
        raise NotImplementedError

    def calls(self) -> list[tuple[str, str, Any]]:
        with self.lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    program: FakeProgram

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        program = self.server.program  # type: ignore[attr-defined]
        with program.lock:
            program.requests.append((method, self.path, body))
            if method == "POST" and program.refuse_posts is not None:
                status, payload = program.refuse_posts, {"error": "refused"}
            else:
                status, payload = program.handle(method, self.path, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


@contextmanager
def serving(program: FakeProgram) -> Iterator[str]:
    """Serves `program` on 127.0.0.1 at a free port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.program = program  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def silent_port() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def closed_port() -> str:
    """A URL on which nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class FakeOllama(FakeProgram):
    def __init__(self, models: dict[str, float]) -> None:
        super().__init__()
        self.sizes = {name: int(mib * MIB) for name, mib in models.items()}
        self.loaded = set(models)

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/api/ps"):
            return 200, {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "size": self.sizes[name],
                        "digest": "0" * 64,
                        "expires_at": "2030-01-01T00:00:00Z",
                        "size_vram": self.sizes[name],
                    }
                    for name in sorted(self.loaded)
                ]
            }
        if (method, path) == ("POST", "/api/generate"):
            name = body.get("model")
            if name not in self.sizes:
                return 404, {"error": f"model '{name}' not found"}
            if body.get("keep_alive") == 0:
                self.asked.set()
                self.loaded.discard(name)
                reason = "unload"
            else:
                self.loaded.add(name)
                reason = "load"
            return 200, {"model": name, "response": "", "done": True, "done_reason": reason}
        return 404, {"error": "not found"}


class FakeComfyUi(FakeProgram):
    """`/free` sets flags that the worker acts on after its current job (`finish_job`)."""

    def __init__(self, running: int = 0) -> None:
        super().__init__()
        self.running = running
        self.models_loaded = True
        self.unload_pending = False

    def finish_job(self) -> None:
        with self.lock:
            self.running = 0
            if self.unload_pending:
                self.models_loaded = False
                self.unload_pending = False

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/queue"):
            running = [[i, f"prompt-{i}", {}, {}, []] for i in range(self.running)]
            return 200, {"queue_running": running, "queue_pending": []}
        if (method, path) == ("POST", "/free"):
            self.asked.set()
            if body.get("unload_models"):
                if self.running:
                    self.unload_pending = True
                else:
                    self.models_loaded = False
            return 200, None
        return 404, None


class FakeLlamaCpp(FakeProgram):
    def __init__(self, models: dict[str, bool], sleeping: bool = False) -> None:
        super().__init__()
        self.status = {name: "loaded" if loaded else "unloaded" for name, loaded in models.items()}
        self.sleeping = sleeping

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/models"):
            return 200, {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "status": {"value": value}}
                    for name, value in self.status.items()
                ],
            }
        if (method, path) == ("GET", "/props"):
            return 200, {"role": "router", "is_sleeping": self.sleeping}
        if method == "POST" and path in ("/models/unload", "/models/load"):
            name = body.get("model")
            if name not in self.status:
                return 404, {"error": {"message": f"model {name} not found"}}
            unload = path.endswith("unload")
            if unload:
                self.asked.set()
            self.status[name] = "unloaded" if unload else "loaded"
            return 200, {"success": True}
        return 404, None


class FakeVllm(FakeProgram):
    def __init__(self) -> None:
        super().__init__()
        self.sleeping = False
        self.level: int | None = None

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/is_sleeping"):
            return 200, {"is_sleeping": self.sleeping}
        if method == "POST" and path.startswith("/sleep"):
            self.asked.set()
            self.sleeping = True
            self.level = int(path.partition("level=")[2] or 1)
            return 200, None
        if (method, path) == ("POST", "/wake_up"):
            self.sleeping = False
            return 200, None
        return 404, None


class FakeLmStudio(FakeProgram):
    def __init__(self, models: dict[str, tuple[float, int]]) -> None:
        """`models`: key -> (file size in MiB, instances loaded)."""
        super().__init__()
        self.sizes = {key: int(mib * MIB) for key, (mib, _n) in models.items()}
        self.instances = {
            key: [key if i == 0 else f"{key}:{i + 1}" for i in range(n)]
            for key, (_mib, n) in models.items()
        }

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/api/v1/models"):
            return 200, {
                "models": [
                    {
                        "type": "llm",
                        "key": key,
                        "size_bytes": self.sizes[key],
                        "loaded_instances": [
                            {"id": i, "config": {"context_length": 4096}} for i in ids
                        ],
                    }
                    for key, ids in self.instances.items()
                ]
            }
        if (method, path) == ("POST", "/api/v1/models/unload"):
            self.asked.set()
            wanted = body.get("instance_id")
            for ids in self.instances.values():
                if wanted in ids:
                    ids.remove(wanted)
                    return 200, {"instance_id": wanted}
            return 404, {"error": f"no loaded instance {wanted}"}
        if (method, path) == ("POST", "/api/v1/models/load"):
            key = body.get("model")
            if key not in self.instances:
                return 404, {"error": f"no model {key}"}
            self.instances[key].append(key)
            return 200, {"type": "llm", "instance_id": key, "status": "loaded"}
        return 404, None


class FakeA1111(FakeProgram):
    def __init__(self, job_count: int = 0) -> None:
        super().__init__()
        self.job_count = job_count
        self.checkpoint_loaded = True

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if method == "GET" and path.startswith("/sdapi/v1/progress"):
            return 200, {
                "progress": 0.0,
                "eta_relative": 0.0,
                "state": {"job_count": self.job_count, "sampling_step": 0},
                "current_image": None,
            }
        if (method, path) == ("POST", "/sdapi/v1/unload-checkpoint"):
            self.asked.set()
            self.checkpoint_loaded = False
            return 200, {}
        if (method, path) == ("POST", "/sdapi/v1/reload-checkpoint"):
            self.checkpoint_loaded = True
            return 200, {}
        return 404, None


class FakeTextGen(FakeProgram):
    def __init__(self, model: str | None) -> None:
        super().__init__()
        self.model = model

    def handle(self, method: str, path: str, body: Any) -> Reply:
        if (method, path) == ("GET", "/v1/internal/model/info"):
            return 200, {"model_name": self.model or "None", "lora_names": []}
        if (method, path) == ("POST", "/v1/internal/model/unload"):
            self.asked.set()
            self.model = None
            return 200, "OK"
        if (method, path) == ("POST", "/v1/internal/model/load"):
            self.model = body.get("model_name")
            return 200, "OK"
        return 404, None


@contextmanager
def garbling_port(reply: bytes = b"SSH-2.0-OpenSSH_9.6\r\n") -> Iterator[str]:
    """A port where something else listens: it answers every connection with `reply` (not
    HTTP), then hangs up."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        sock.close()
