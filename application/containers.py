"""The composition root: the only module that knows both the adapters and the DI library."""

from __future__ import annotations

import logging

from dependency_injector import containers, providers

from adapters.clock import SystemClock
from adapters.events import JsonlEventSink, NullEventSink
from adapters.host_memory import HostMemoryProbe
from adapters.memory import InMemoryModelHost, NoProbe
from adapters.nvml import NvmlProbe
from adapters.torch_cuda import TorchCudaProbe
from application.guard import GuardService
from domain.legacy import LegacyPolicy
from domain.model import Thresholds, Tuning
from domain.policy import GuardPolicy
from domain.recovery import RecoveryTracker

# transitions logs every state change at INFO; the guard logs what matters itself.
logging.getLogger("transitions").setLevel(logging.WARNING)


class Container(containers.DeclarativeContainer):
    config = providers.Configuration()

    clock = providers.Singleton(SystemClock)
    thresholds = providers.Object(Thresholds())
    tuning = providers.Object(Tuning())

    events = providers.Selector(
        config.events.kind.as_(str),
        none=providers.Singleton(NullEventSink),
        jsonl=providers.Singleton(JsonlEventSink, config.events.path),
    )

    # Singletons, not Resources: nothing starts until the selected branch is first used
    # (init_resources() would start NVML even behind an unselected branch).
    probe = providers.Selector(
        config.probe.kind.as_(str),
        none=providers.Singleton(NoProbe, clock),
        nvml=providers.Singleton(NvmlProbe, clock, config.probe.gpu.as_(str)),
        torch=providers.Singleton(TorchCudaProbe, clock, config.probe.gpu.as_(int)),
        host=providers.Singleton(HostMemoryProbe, clock),
    )

    host = providers.Singleton(InMemoryModelHost, clock, tuning=tuning)

    policy = providers.Selector(
        config.policy.as_(str),
        default=providers.Singleton(GuardPolicy, thresholds, tuning),
        legacy=providers.Singleton(LegacyPolicy),
    )

    recovery = providers.Singleton(RecoveryTracker, tuning)

    guard = providers.Singleton(
        GuardService,
        probe=probe,
        host=host,
        policy=policy,
        events=events,
        clock=clock,
        recovery=recovery,
    )


def make_container(
    probe: str = "none",
    gpu: str = "0",
    policy: str = "default",
    events_path: str | None = None,
    thresholds: Thresholds | None = None,
    tuning: Tuning | None = None,
) -> Container:
    container = Container()
    container.config.from_dict(
        {
            "probe": {"kind": probe, "gpu": gpu},
            "policy": policy,
            "events": {"kind": "jsonl" if events_path else "none", "path": events_path},
        }
    )
    if thresholds is not None:
        container.thresholds.override(providers.Object(thresholds))
    if tuning is not None:
        container.tuning.override(providers.Object(tuning))
    return container
