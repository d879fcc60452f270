"""The composition root: the only module that knows both the adapters and the DI library."""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs
from dependency_injector import containers, providers

from swictation.adapters.audio_file import FileAudioSource
from swictation.adapters.clock import SystemClock
from swictation.adapters.control_socket import ControlServer, default_socket_path
from swictation.adapters.dbus import DbusPressurePublisher, DbusUnavailableError, TeeEventSink
from swictation.adapters.events import JsonlEventSink, NullEventSink
from swictation.adapters.faults import FaultyRecognizer
from swictation.adapters.host_memory import HostMemoryProbe
from swictation.adapters.memory import InMemoryModelHost, NoProbe, ResidentModelsProbe
from swictation.adapters.microphone import MicrophoneSource
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.nvml import NvmlProbe
from swictation.adapters.simulated import SimulatedGpuHost
from swictation.adapters.spool import Spool
from swictation.adapters.systemd import notify, watchdog_interval_s
from swictation.adapters.tenants import http_tenant
from swictation.adapters.text_output import (
    FileOutput,
    OutputError,
    StdoutOutput,
    wtype_output,
    xdotool_output,
)
from swictation.adapters.torch_cuda import TorchCudaProbe, cuda_available
from swictation.adapters.torch_models import TorchResidency
from swictation.adapters.traces import TraceProbe, read_trace
from swictation.application.config import DaemonSettings
from swictation.application.services.cooperation import TenantBroker, TenantSpec
from swictation.application.services.guard import GuardService
from swictation.application.services.pipeline import DictationPipeline
from swictation.application.services.recovery import RecoveringRunner
from swictation.domain.legacy import LegacyPolicy
from swictation.domain.model import Event, Thresholds, Tuning
from swictation.domain.policy import GuardPolicy
from swictation.domain.recovery import RecoveryTracker

# transitions logs every state change at INFO; the guard logs what matters itself.
logging.getLogger("transitions").setLevel(logging.WARNING)
log = logging.getLogger("swictation")


class Container(containers.DeclarativeContainer):
    """The guard alone: for `swictation record`, tests and embedding."""

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


# -- the daemon ------------------------------------------------------------------------------


def _device(settings: DaemonSettings) -> str:
    device = settings.config.stt.device
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return str(device)


def _stt_residency(settings: DaemonSettings) -> Any:
    if settings.config.stt.engine == "nemo":
        from swictation.adapters.nemo_stt import load_nemo

        return TorchResidency(load_nemo(settings.config.stt.model, "cpu"))
    from swictation.adapters.whisper_stt import whisper_residency

    # A CTranslate2 model is built on its device; offloading is handled by its residency.
    return whisper_residency(settings.config.stt.model, _device(settings))


def _vad_residency() -> Any:
    from swictation.adapters.silero import load_silero

    return TorchResidency(load_silero())


def _loaded_host(
    settings: DaemonSettings, vad: Any, stt: Any, events: Any, clock: Any, t0: float
) -> RealModelHost:
    host = RealModelHost()
    host.register("vad", vad)
    host.register("stt", stt)
    device = _device(settings)
    if device == "cuda":
        for name in ("vad", "stt"):
            moved = host.move(name, "cuda")
            if not moved.done:
                log.warning("%s stays on the CPU: %s", name, moved.reason)
    for model in host.models():
        log.info("model %s: %.1f MiB on %s", model.name, model.size_mib, host.device(model.name))
        events.emit(
            Event(
                clock.now() - t0,
                "model",
                model=model.name,
                detail={"size_mib": round(model.size_mib, 1), "device": host.device(model.name)},
            )
        )
    return host


def _trace_probe(settings: DaemonSettings, clock: Any, host: Any) -> Any:
    if not settings.config.daemon.trace:
        raise ValueError("--probe trace needs --trace FILE")
    trace = read_trace(settings.config.daemon.trace)
    inner = TraceProbe(trace, clock)
    if isinstance(host, SimulatedGpuHost):
        return ResidentModelsProbe(inner, host.simulated)
    return inner


def _guard_host(settings: DaemonSettings, loaded: RealModelHost, clock: Any) -> Any:
    if settings.config.daemon.probe == "trace":
        return SimulatedGpuHost(loaded, clock, settings.config.guard.tuning)
    return loaded


def _recognizer(settings: DaemonSettings, host: Any) -> Any:
    stt = settings.config.stt
    if stt.engine == "nemo":
        from swictation.adapters.nemo_stt import NemoRecognizer

        recognizer: Any = NemoRecognizer(host, "stt", stt.language)
    else:
        from swictation.adapters.whisper_stt import WhisperRecognizer

        recognizer = WhisperRecognizer(host, "stt", stt.language, stt.beam_size)
    for fault in settings.faults:
        if fault.model == "stt":
            recognizer = FaultyRecognizer(recognizer, host, fault.model, fault.kind, fault.count)
    return recognizer


def _vad(host: Any) -> Any:
    from swictation.adapters.silero import SileroVoiceDetector

    return SileroVoiceDetector(host, "vad")


def _source(settings: DaemonSettings) -> Any:
    if settings.audio_file:
        return FileAudioSource(settings.audio_file, realtime=settings.realtime)
    return MicrophoneSource(settings.config.audio.device)


def _output(settings: DaemonSettings) -> Any:
    output = settings.config.output
    if output.kind == "file":
        if not output.file:
            raise OutputError("--output file needs --output-file PATH")
        return FileOutput(output.file)
    if output.kind == "wtype":
        return wtype_output()
    if output.kind == "xdotool":
        return xdotool_output()
    return StdoutOutput()


def _events(settings: DaemonSettings) -> Any:
    path = settings.config.daemon.events
    sink: Any = JsonlEventSink(path) if path else NullEventSink()
    if not settings.config.daemon.dbus:
        return sink
    try:
        publisher = DbusPressurePublisher()
    except DbusUnavailableError as error:
        log.info("the memory level is not published on D-Bus: %s", error)
        return sink
    log.info("publishing the memory level on the D-Bus session bus as %s", publisher.unique_name)
    return TeeEventSink(sink, publisher)


def _tenants(settings: DaemonSettings, events: Any, clock: Any, probe: Any) -> Any:
    """The co-tenants of [[tenants]], or None: each named by its kind (kind#2 for a second)."""
    tables = settings.config.tenants
    if not tables:
        return None
    specs = []
    seen: dict[str, int] = {}
    for table in tables:
        kind = str(table.kind)
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}#{seen[kind]}"
        tenant = http_tenant(kind, table.url, table.models)
        specs.append(TenantSpec(name, tenant, table.priority, table.idle_only))
        log.info("co-tenant %s at %s", name, tenant.url)
    wait_s = settings.config.guard.tuning.tenant_wait_s
    return TenantBroker(specs, events, clock, card=probe.sample, wait_s=wait_s)


def _control(settings: DaemonSettings) -> Any:
    socket = settings.config.control.socket
    if settings.audio_file and not socket:
        return None  # a file run is not a session to control unless asked
    return socket or str(default_socket_path())


class DaemonContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=DaemonSettings)
    start_time = providers.Singleton(time.monotonic)

    clock = providers.Singleton(SystemClock)
    events = providers.Singleton(_events, settings)
    vad_residency = providers.Singleton(_vad_residency)
    stt_residency = providers.Singleton(_stt_residency, settings)
    models = providers.Singleton(
        _loaded_host, settings, vad_residency, stt_residency, events, clock, start_time
    )
    host = providers.Singleton(_guard_host, settings, models, clock)
    probe = providers.Selector(
        providers.Callable(lambda s: str(s.config.daemon.probe), settings),
        none=providers.Singleton(NoProbe, clock),
        nvml=providers.Singleton(
            NvmlProbe, clock, providers.Callable(lambda s: s.config.daemon.gpu, settings)
        ),
        torch=providers.Singleton(
            TorchCudaProbe, clock, providers.Callable(lambda s: int(s.config.daemon.gpu), settings)
        ),
        host=providers.Singleton(HostMemoryProbe, clock),
        trace=providers.Singleton(_trace_probe, settings, clock, host),
    )
    tenants = providers.Singleton(_tenants, settings, events, clock, probe)
    tuning = providers.Callable(lambda s: s.config.guard.tuning, settings)
    recovery = providers.Singleton(RecoveryTracker, tuning)
    runner = providers.Singleton(RecoveringRunner, host, recovery, events, clock, start_time)
    pipeline = providers.Singleton(
        DictationPipeline,
        source=providers.Singleton(_source, settings),
        vad=providers.Singleton(_vad, host),
        stt=providers.Singleton(_recognizer, settings, host),
        output=providers.Singleton(_output, settings),
        runner=runner,
        events=events,
        spool=providers.Singleton(
            Spool, providers.Callable(lambda s: s.config.daemon.spool_dir, settings)
        ),
        settings=providers.Callable(lambda s: s.config.vad, settings),
        device_of=providers.Callable(lambda h: h.device, host),
        realtime=providers.Callable(lambda s: s.realtime, settings),
        start_time=start_time,
    )
    guard = providers.Singleton(
        GuardService,
        probe=probe,
        host=host,
        policy=providers.Singleton(lambda s: s.config.guard_config.make_policy(), settings),
        events=events,
        clock=clock,
        recovery=recovery,
        busy=providers.Callable(lambda p: lambda: p.busy, pipeline),
        start_time=start_time,
        tenants=tenants,
    )
    control_path = providers.Callable(_control, settings)


@attrs.define
class DaemonParts:
    """What the daemon runs, built by the container."""

    pipeline: DictationPipeline
    guard: GuardService
    events: Any
    host: Any
    control: ControlServer | None
    watchdog_s: float | None = None

    def notify(self, state: str) -> None:
        notify(state)

    def release(self) -> None:
        releaser = getattr(self.host, "release_all", None)
        if releaser is not None:
            releaser()

    def close(self) -> None:
        if self.guard.tenants is not None:
            self.guard.tenants.close()  # asks in flight are recorded before the events close
        self.guard.probe.close()
        self.events.close()


def build_daemon(settings: DaemonSettings) -> tuple[DaemonParts, Any]:
    """Builds every part (loading the models); returns the parts and a binder that connects
    the daemon's callbacks once it exists."""
    container = DaemonContainer(settings=settings)
    pipeline = container.pipeline()
    guard = container.guard()
    path = container.control_path()
    parts = DaemonParts(
        pipeline, guard, container.events(), container.host(), None, watchdog_interval_s()
    )

    def bind(daemon: Any) -> None:
        guard.on_shutdown = daemon.on_shutdown
        if path is not None:
            parts.control = ControlServer(path, daemon.handle)

    return parts, bind
