"""Co-tenants over HTTP: one client per program (Ollama, ComfyUI, llama.cpp's router, vLLM,
LM Studio, Automatic1111, text-generation-webui), each speaking that program's documented API
with the standard library and 1 s timeouts; and a simulated tenant for replay."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from swictation.ports.tenants import (
    TENANT_KINDS,
    ReleaseResult,
    Tenant,
    TenantCall,
    TenantModel,
    TenantState,
)

MIB = 1024 * 1024
TIMEOUT_S = 1.0
_MAX_BODY = 4 * MIB

DEFAULT_URLS: Mapping[str, str] = {
    "ollama": "http://127.0.0.1:11434",
    "comfyui": "http://127.0.0.1:8188",
    "llamacpp": "http://127.0.0.1:8080",
    "vllm": "http://127.0.0.1:8000",
    "lmstudio": "http://127.0.0.1:1234",
    "a1111": "http://127.0.0.1:7860",
    "textgen": "http://127.0.0.1:5000",
}

# Never through an HTTP proxy: the tenants are on this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _NoAnswerError(Exception):
    """A request that got no usable answer; the message says why, in words."""


class _Exchange:
    """The requests of one operation, in order; each one's outcome recorded."""

    def __init__(self, base: str, timeout_s: float) -> None:
        self._base = base.rstrip("/")
        self._timeout_s = timeout_s
        self.calls: list[TenantCall] = []

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON reply (None for an empty one); _NoAnswerError for anything else."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        text = "" if data is None else data.decode()
        request = urllib.request.Request(self._base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=self._timeout_s) as reply:
                raw = reply.read(_MAX_BODY)
                status = reply.status
        except urllib.error.HTTPError as error:
            self.calls.append(TenantCall(method, path, text, error.code))
            raise _NoAnswerError(f"{method} {path}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            # HTTPException: something that is not an HTTP server answered on the port.
            self.calls.append(TenantCall(method, path, text, None))
            reason = getattr(error, "reason", None) or error
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                reason = f"no answer within {self._timeout_s:g}s"
            raise _NoAnswerError(f"{method} {path}: {reason}") from None
        self.calls.append(TenantCall(method, path, text, status))
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise _NoAnswerError(f"{method} {path}: the reply is not JSON") from None


def _list(value: Any, key: str) -> list[Any]:
    items = value.get(key) if isinstance(value, Mapping) else None
    return items if isinstance(items, list) else []


def _mib(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value) / MIB
    return None


class HttpTenant(Tenant):
    """What every client shares: the exchange, errors as values, timing, the models filter.

    Subclasses implement `_state`, `_release` and `_reload`, which may raise `_NoAnswerError`.
    """

    KIND: ClassVar[str] = ""

    def __init__(
        self, url: str | None = None, models: Iterable[str] = (), timeout_s: float = TIMEOUT_S
    ) -> None:
        self.kind = self.KIND
        self.url = (url or DEFAULT_URLS[self.kind]).rstrip("/")
        self.models = tuple(models)
        self.timeout_s = timeout_s
        # What the last release let go of, for `reload`.
        self._released: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _may_unload(self, name: str) -> bool:
        return not self.models or name in self.models

    def _exchange(self) -> _Exchange:
        return _Exchange(self.url, self.timeout_s)

    def state(self) -> TenantState:
        exchange = self._exchange()
        try:
            return self._state(exchange)
        except _NoAnswerError as error:
            return TenantState(self.kind, self.url, False, error=str(error))

    def release(self) -> ReleaseResult:
        return self._run(self._release, remember=True)

    def reload(self) -> ReleaseResult:
        return self._run(self._reload, remember=False)

    def _run(
        self,
        operation: Callable[[_Exchange], tuple[tuple[str, ...], float | None]],
        remember: bool,
    ) -> ReleaseResult:
        exchange = self._exchange()
        began = time.monotonic()
        with self._lock:
            try:
                names, reported = operation(exchange)
            except _NoAnswerError as error:
                return ReleaseResult(
                    self.kind,
                    self.url,
                    False,
                    calls=tuple(exchange.calls),
                    error=str(error),
                    seconds=time.monotonic() - began,
                )
            if remember and names:
                self._released = names
            elif not remember:
                self._released = ()
        return ReleaseResult(
            self.kind,
            self.url,
            True,
            names,
            reported,
            tuple(exchange.calls),
            seconds=time.monotonic() - began,
        )

    def _state(self, exchange: _Exchange) -> TenantState:
        raise NotImplementedError

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        raise NotImplementedError

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        raise NotImplementedError


class OllamaTenant(HttpTenant):
    """`GET /api/ps` lists what is loaded with `size_vram`; `POST /api/generate` with
    `keep_alive: 0` unloads one model, and with no prompt loads it again."""

    KIND = "ollama"

    def _loaded(self, exchange: _Exchange) -> tuple[TenantModel, ...]:
        reply = exchange.call("GET", "/api/ps")
        return tuple(
            TenantModel(str(m.get("name") or m.get("model")), _mib(m.get("size_vram")))
            for m in _list(reply, "models")
            if isinstance(m, Mapping) and (m.get("name") or m.get("model"))
        )

    def _state(self, exchange: _Exchange) -> TenantState:
        return TenantState(self.kind, self.url, True, self._loaded(exchange))

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        chosen = [m for m in self._loaded(exchange) if self._may_unload(m.name)]
        for model in chosen:
            exchange.call("POST", "/api/generate", {"model": model.name, "keep_alive": 0})
        sizes = [m.size_mib for m in chosen if m.size_mib is not None]
        return tuple(m.name for m in chosen), sum(sizes) if sizes else None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        for name in self._released:
            exchange.call("POST", "/api/generate", {"model": name})
        return self._released, None


class ComfyUiTenant(HttpTenant):
    """`GET /queue` says whether a job runs; `POST /free` only sets a flag: the worker frees
    after its current job, so the caller watches the card afterwards. It loads its models
    again with its next job, so there is nothing to reload."""

    KIND = "comfyui"

    def _state(self, exchange: _Exchange) -> TenantState:
        reply = exchange.call("GET", "/queue")
        busy = bool(_list(reply, "queue_running")) or bool(_list(reply, "queue_pending"))
        return TenantState(self.kind, self.url, True, busy=busy)

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        exchange.call("POST", "/free", {"unload_models": True, "free_memory": True})
        return ("all models",), None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        return (), None


class LlamaCppTenant(HttpTenant):
    """llama.cpp's server in router mode: `GET /models` lists models with their status,
    `POST /models/unload` and `POST /models/load` take `{"model": ID}`; `GET /props` reports
    `is_sleeping`."""

    KIND = "llamacpp"

    def _loaded(self, exchange: _Exchange) -> tuple[TenantModel, ...]:
        reply = exchange.call("GET", "/models")
        loaded = []
        for entry in _list(reply, "data"):
            if not isinstance(entry, Mapping) or not entry.get("id"):
                continue
            status = entry.get("status")
            value = status.get("value") if isinstance(status, Mapping) else status
            if value == "loaded":
                loaded.append(TenantModel(str(entry["id"])))
        return tuple(loaded)

    def _state(self, exchange: _Exchange) -> TenantState:
        models = self._loaded(exchange)
        sleeping: bool | None = None
        try:
            props = exchange.call("GET", "/props")
        except _NoAnswerError:
            props = None
        if isinstance(props, Mapping) and isinstance(props.get("is_sleeping"), bool):
            sleeping = props["is_sleeping"]
        return TenantState(self.kind, self.url, True, models, sleeping=sleeping)

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        chosen = [m.name for m in self._loaded(exchange) if self._may_unload(m.name)]
        for name in chosen:
            exchange.call("POST", "/models/unload", {"model": name})
        return tuple(chosen), None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        for name in self._released:
            exchange.call("POST", "/models/load", {"model": name})
        return self._released, None


class VllmTenant(HttpTenant):
    """vLLM's sleep mode (a server started with `--enable-sleep-mode` and
    `VLLM_SERVER_DEV_MODE=1`): `GET /is_sleeping`, `POST /sleep?level=1` (weights to CPU RAM,
    KV cache dropped), `POST /wake_up`."""

    KIND = "vllm"
    _SLEEP = "sleep level 1"

    def _sleeping(self, exchange: _Exchange) -> bool | None:
        reply = exchange.call("GET", "/is_sleeping")
        value = reply.get("is_sleeping") if isinstance(reply, Mapping) else None
        return value if isinstance(value, bool) else None

    def _state(self, exchange: _Exchange) -> TenantState:
        return TenantState(self.kind, self.url, True, sleeping=self._sleeping(exchange))

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        if self._sleeping(exchange):
            return (), None
        exchange.call("POST", "/sleep?level=1")
        return (self._SLEEP,), None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        if not self._released:
            return (), None
        exchange.call("POST", "/wake_up")
        return self._released, None


class LmStudioTenant(HttpTenant):
    """LM Studio's REST API: `GET /api/v1/models` lists models with their `loaded_instances`
    (and `size_bytes`, the file); `POST /api/v1/models/unload` takes `{"instance_id": ID}`;
    `POST /api/v1/models/load` takes `{"model": KEY}`."""

    KIND = "lmstudio"

    def _instances(self, exchange: _Exchange) -> list[tuple[str, str, float | None]]:
        reply = exchange.call("GET", "/api/v1/models")
        found = []
        for model in _list(reply, "models"):
            if not isinstance(model, Mapping):
                continue
            key = str(model.get("key", ""))
            for instance in _list(model, "loaded_instances"):
                if isinstance(instance, Mapping) and instance.get("id"):
                    found.append((str(instance["id"]), key, _mib(model.get("size_bytes"))))
        return found

    def _state(self, exchange: _Exchange) -> TenantState:
        models = tuple(TenantModel(i, size) for i, _key, size in self._instances(exchange))
        return TenantState(self.kind, self.url, True, models)

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        chosen = [
            (instance, key, size)
            for instance, key, size in self._instances(exchange)
            if self._may_unload(key) or self._may_unload(instance)
        ]
        for instance, _key, _size in chosen:
            exchange.call("POST", "/api/v1/models/unload", {"instance_id": instance})
        sizes = [size for _i, _k, size in chosen if size is not None]
        # Reload by key: an instance id does not outlive its instance.
        return tuple(key for _i, key, _s in chosen), sum(sizes) if sizes else None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        for key in self._released:
            exchange.call("POST", "/api/v1/models/load", {"model": key})
        return self._released, None


class A1111Tenant(HttpTenant):
    """Automatic1111's web UI API: `GET /sdapi/v1/progress` (its `state.job_count` says whether
    it is busy), `POST /sdapi/v1/unload-checkpoint`, `POST /sdapi/v1/reload-checkpoint`."""

    KIND = "a1111"
    _CHECKPOINT = "checkpoint"

    def _state(self, exchange: _Exchange) -> TenantState:
        reply = exchange.call("GET", "/sdapi/v1/progress?skip_current_image=true")
        state = reply.get("state") if isinstance(reply, Mapping) else None
        jobs = state.get("job_count") if isinstance(state, Mapping) else None
        busy = jobs > 0 if isinstance(jobs, int) else None
        return TenantState(self.kind, self.url, True, busy=busy)

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        exchange.call("POST", "/sdapi/v1/unload-checkpoint")
        return (self._CHECKPOINT,), None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        if not self._released:
            return (), None
        exchange.call("POST", "/sdapi/v1/reload-checkpoint")
        return self._released, None


class TextGenTenant(HttpTenant):
    """text-generation-webui's API: `GET /v1/internal/model/info` (`model_name`, "None" when
    nothing is loaded), `POST /v1/internal/model/unload`, `POST /v1/internal/model/load`."""

    KIND = "textgen"

    def _loaded(self, exchange: _Exchange) -> str | None:
        reply = exchange.call("GET", "/v1/internal/model/info")
        name = reply.get("model_name") if isinstance(reply, Mapping) else None
        return name if isinstance(name, str) and name and name != "None" else None

    def _state(self, exchange: _Exchange) -> TenantState:
        name = self._loaded(exchange)
        models = () if name is None else (TenantModel(name),)
        return TenantState(self.kind, self.url, True, models)

    def _release(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        name = self._loaded(exchange)
        if name is None or not self._may_unload(name):
            return (), None
        exchange.call("POST", "/v1/internal/model/unload")
        return (name,), None

    def _reload(self, exchange: _Exchange) -> tuple[tuple[str, ...], float | None]:
        for name in self._released:
            exchange.call("POST", "/v1/internal/model/load", {"model_name": name})
        return self._released, None


CLIENTS: Mapping[str, type[HttpTenant]] = {
    cls.KIND: cls
    for cls in (
        OllamaTenant,
        ComfyUiTenant,
        LlamaCppTenant,
        VllmTenant,
        LmStudioTenant,
        A1111Tenant,
        TextGenTenant,
    )
}
assert tuple(CLIENTS) == TENANT_KINDS


def http_tenant(
    kind: str, url: str | None = None, models: Iterable[str] = (), timeout_s: float = TIMEOUT_S
) -> HttpTenant:
    """The client for `kind` (one of TENANT_KINDS)."""
    return CLIENTS[kind](url, models, timeout_s)


class SimulatedTenant(Tenant):
    """A tenant that holds `held_mib` on the card and frees all of it when asked (replay and
    tests). `freed_mib` is what it has given back so far; a reload takes it again."""

    def __init__(self, kind: str, held_mib: float, url: str = "simulated") -> None:
        self.kind = kind
        self.url = url
        self.held_mib = held_mib
        self.freed_mib = 0.0
        self.asks = 0

    def state(self) -> TenantState:
        held = self.held_mib - self.freed_mib
        models = (TenantModel(self.kind, held),) if held > 0 else ()
        return TenantState(self.kind, self.url, True, models, busy=False)

    def release(self) -> ReleaseResult:
        self.asks += 1
        held = self.held_mib - self.freed_mib
        self.freed_mib = self.held_mib
        released = (self.kind,) if held > 0 else ()
        return ReleaseResult(self.kind, self.url, True, released, held if held > 0 else None)

    def reload(self) -> ReleaseResult:
        taken = self.freed_mib
        self.freed_mib = 0.0
        return ReleaseResult(self.kind, self.url, True, (self.kind,) if taken else (), taken)
