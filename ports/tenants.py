"""The co-tenant port: other programs on the card (LLM and image servers) that can be asked to
release GPU memory through their own APIs."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs

from swictation.domain.cooperation import TenantView
from swictation.domain.model import Action

TENANT_KINDS = ("ollama", "comfyui", "llamacpp", "vllm", "lmstudio", "a1111", "textgen")
# The kinds whose API names what is loaded, so that a configured list can choose what to unload.
TENANT_KINDS_NAMING_MODELS = ("ollama", "llamacpp", "lmstudio", "textgen")


@attrs.frozen
class TenantModel:
    """One model a tenant has loaded; `size_mib` where its API reports it."""

    name: str
    size_mib: float | None = None


@attrs.frozen
class TenantState:
    """What a tenant's API says about it. `busy` and `sleeping` are None where the API does not
    say; `reachable` False means it did not answer (`error` says how)."""

    kind: str
    url: str
    reachable: bool
    models: tuple[TenantModel, ...] = ()
    busy: bool | None = None
    sleeping: bool | None = None
    error: str = ""

    @property
    def held_mib(self) -> float | None:
        """GPU memory the API reports for its loaded models (None where it reports none)."""
        sizes = [m.size_mib for m in self.models if m.size_mib is not None]
        return sum(sizes) if sizes else None


@attrs.frozen
class TenantCall:
    """One HTTP request made to a tenant, and its outcome (`status` None: no answer)."""

    method: str
    path: str
    body: str = ""
    status: int | None = None

    def describe(self) -> str:
        text = f"{self.method} {self.path}"
        if self.body:
            text += f" {self.body}"
        return text + (" -> no answer" if self.status is None else f" -> {self.status}")


@attrs.frozen
class ReleaseResult:
    """What one request to release (or reload) did. `done` False: not carried out, see `error`.
    `released` names the models let go (or the tenant's own word, e.g. "sleep level 1");
    `reported_mib` is what its API said those held, where it says."""

    kind: str
    url: str
    done: bool
    released: tuple[str, ...] = ()
    reported_mib: float | None = None
    calls: tuple[TenantCall, ...] = ()
    error: str = ""
    seconds: float = 0.0


@runtime_checkable
class Tenant(Protocol):
    """One co-tenant. Every method returns within its timeouts and never raises: an error in
    the tenant's program or the network is a value."""

    kind: str
    url: str

    def state(self) -> TenantState: ...

    def release(self) -> ReleaseResult:
        """Ask it to let go of the GPU memory it may give up (its configured models, or all)."""
        ...

    def reload(self) -> ReleaseResult:
        """Ask it to take back what the last release let go of (where its API can)."""
        ...


@runtime_checkable
class TenantRelay(Protocol):
    """What the guard uses of the co-tenants: their latest known state (never blocking) and a
    hand-off for the asks it decided (carried out off the guard's thread)."""

    def views(self) -> tuple[TenantView, ...]: ...

    def ask(self, action: Action, t: float, usage: float | None = None) -> None: ...

    def snapshot(self) -> list[dict[str, Any]]:
        """Each co-tenant's last known state and what asking it did, for status and reports."""
        ...

    def close(self) -> None: ...
