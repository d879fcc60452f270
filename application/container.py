"""The composition root: the only module that knows both the adapters and the DI library.

One container builds the daemon, `swictation record`, and replay and the simulator: the
validated settings feed `config`; selectors pick the probe, the model host, the recognizer,
the VAD, the audio source and the output by a configuration key; resources (NVML, the flight
recorder, the loaded models, the control server) start when the selected branch is first
used and stop in `shutdown`. Tests swap any provider with `container.x.override(...)`.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from dependency_injector import containers, providers

from swictation.adapters.audio_file import FileAudioSource
from swictation.adapters.clock import SystemClock
from swictation.adapters.control_socket import (
    ControlError,
    ControlServer,
    Handler,
    SocketLock,
    default_socket_path,
)
from swictation.adapters.dbus import DbusPressurePublisher, DbusUnavailableError, TeeEventSink
from swictation.adapters.events import JsonlEventSink, NullEventSink
from swictation.adapters.faults import FaultyRecognizer, FaultyVoiceDetector
from swictation.adapters.host_memory import HostMemoryProbe
from swictation.adapters.memory import FakeClock, InMemoryModelHost, NoProbe, ResidentModelsProbe
from swictation.adapters.microphone import MicrophoneSource
from swictation.adapters.model_host import RealModelHost
from swictation.adapters.nvml import NvmlProbe
from swictation.adapters.simulated import SimulatedGpuHost
from swictation.adapters.spool import Spool
from swictation.adapters.systemd import notify, watchdog_interval_s
from swictation.adapters.tenants import SimulatedTenant, http_tenant
from swictation.adapters.text_output import (
    FileOutput,
    OutputError,
    StdoutOutput,
    append_undelivered,
    wtype_output,
    xdotool_output,
)
from swictation.adapters.torch_cuda import TorchCudaProbe, cuda_available
from swictation.adapters.torch_models import TorchResidency
from swictation.adapters.trace_row import TraceRowProbe
from swictation.adapters.trace_writer import TraceFileWriter
from swictation.adapters.traces import TraceProbe, read_trace
from swictation.application.config import (
    DaemonSettings,
    Fault,
    GuardConfig,
    GuardSection,
    ProbeKind,
    TenantSection,
    ThresholdsSection,
    converter,
)
from swictation.application.entrypoints.presenters import status_line
from swictation.application.services.cooperation import TenantBroker, TenantSpec
from swictation.application.services.daemon import Daemon, DaemonParts
from swictation.application.services.guard import GuardService
from swictation.application.services.handover import GapStop, Handover, Reexecution
from swictation.application.services.pipeline import DictationPipeline
from swictation.application.services.recovery import RecoveringRunner
from swictation.application.services.simulation import (
    ModelSpec,
    SimulationReport,
    SimulationRig,
    run_simulation,
)
from swictation.application.services.stop import StopSignal
from swictation.application.services.workers import Workers
from swictation.domain.gpu_mode import GpuMode, GpuModeMachine, Tenure
from swictation.domain.legacy import LegacyPolicy
from swictation.domain.model import Event, ModelState, Thresholds, Tuning
from swictation.domain.policy import GuardPolicy, Policy
from swictation.domain.recovery import RecoveryTracker
from swictation.domain.segmenter import VadSettings
from swictation.ports import EventSink

# transitions logs every state change at INFO; the guard logs what matters itself.
logging.getLogger("transitions").setLevel(logging.WARNING)
log = logging.getLogger("swictation")


# -- builders the providers call -------------------------------------------------------------


def _thresholds(plain: dict[str, Any]) -> Thresholds:
    return converter.structure(plain, ThresholdsSection).values


def _tuning(plain: dict[str, Any]) -> Tuning:
    return converter.structure(plain, GuardSection).tuning


def _vad_settings(plain: dict[str, Any]) -> VadSettings:
    return converter.structure(plain, VadSettings)


def _jsonl_events(path: str) -> Iterator[JsonlEventSink]:
    sink = JsonlEventSink(path, append=True)  # the flight recorder survives restarts
    try:
        yield sink
    finally:
        sink.close()


def _nvml(clock: Any, gpu: str) -> Iterator[NvmlProbe]:
    probe = NvmlProbe(clock, gpu)
    try:
        yield probe
    finally:
        probe.close()


def _device(wanted: str) -> str:
    if wanted == "auto":
        return "cuda" if cuda_available() else "cpu"
    if wanted == "cuda" and not cuda_available():
        raise RuntimeError(
            "--device cuda: CUDA is not available here (no NVIDIA driver, or a CPU build of "
            "torch); use --device auto or --device cpu"
        )
    return wanted


def _needs(module: str, extra: str, what: str) -> None:
    """A missing optional dependency is one line naming the fix, not a library's traceback."""
    if importlib.util.find_spec(module) is None:
        raise RuntimeError(f"{what} needs {module}: pip install 'swictation[{extra}]'")


def _silero_residency() -> Any:
    _needs("silero_vad", "vad", "the Silero VAD")
    _needs("onnxruntime", "vad", "the Silero VAD")
    from swictation.adapters.silero import OnnxResidency

    return OnnxResidency()  # onnxruntime on one thread: nearly free while the room is quiet


def _whisper_residency(model: str | None, device: str, compute_type: str = "auto") -> Any:
    _needs("faster_whisper", "whisper", "--stt whisper")
    from swictation.adapters.whisper_stt import whisper_residency

    # A CTranslate2 model is built on its device; offloading is handled by its residency.
    return whisper_residency(model, device, compute_type)


def _nemo_residency(model: str | None) -> Any:
    _needs("nemo", "nemo", "--stt nemo")
    from swictation.adapters.nemo_stt import load_nemo

    return TorchResidency(load_nemo(model, "cpu"))


def _loaded_models(vad: Any, stt: Any, device: str) -> Iterator[RealModelHost]:
    """The models loaded and placed; released (GPU memory given back) at shutdown."""
    host = RealModelHost()
    host.register("vad", vad)
    host.register("stt", stt)
    if device == "cuda":
        for name in ("vad", "stt"):
            moved = host.move(name, "cuda")
            if not moved.done:
                log.warning("%s stays on the CPU: %s", name, moved.reason)
    try:
        yield host
    finally:
        host.release_all()


def _announced(host: RealModelHost, events: EventSink, clock: Any, t0: float) -> RealModelHost:
    """Each model's size and place, in the log and the flight recorder (replay reads them)."""
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


def _model_states(models: Sequence[dict[str, Any]]) -> tuple[ModelState, ...]:
    return tuple(
        ModelState(
            m["name"],
            m["size_mib"],
            offloadable=m.get("offloadable", True),
            working_mib=m.get("working_mib", 0.0),
        )
        for m in models
    )


def _trace_file(probe: str, path: str | None) -> Any:
    """The `--trace` of `--probe trace`, read (and so checked) on its own, before any model
    loads; None for another probe."""
    if probe != "trace":
        return None
    if not path:
        raise ValueError("--probe trace needs --trace FILE")
    return read_trace(path)


def _trace_probe(
    trace: Any,
    clock: Any,
    host: Any,
    origin: float | None = None,
    context_mib: float = 0.0,
    on_gpu: bool = True,
) -> Any:
    """The trace as the card (from `origin`: a re-executed daemon's trace goes on where it
    was), with the simulated models; the trace holds our CUDA context, which leaves the card
    once the daemon has given the GPU up."""
    inner = TraceProbe(trace, clock, origin)
    if isinstance(host, SimulatedGpuHost):
        return ResidentModelsProbe(inner, host.simulated, 0.0 if on_gpu else context_mib)
    return inner


def _whisper(host: Any, language: str, beam_size: int) -> Any:
    from swictation.adapters.whisper_stt import WhisperRecognizer

    return WhisperRecognizer(host, "stt", language, beam_size)


def _nemo(host: Any, language: str) -> Any:
    from swictation.adapters.nemo_stt import NemoRecognizer

    return NemoRecognizer(host, "stt", language)


def _silero_detector(host: Any) -> Any:
    from swictation.adapters.silero import SileroVoiceDetector

    return SileroVoiceDetector(host, "vad")


def _faults_anywhere(host: Any) -> bool:
    """Without any GPU (real, or simulated under `--probe trace`), injected faults fire
    whatever the device: a rehearsal must do something on a CPU-only machine too."""
    return not isinstance(host, SimulatedGpuHost | InMemoryModelHost) and not cuda_available()


def _with_faults(recognizer: Any, host: Any, faults: Sequence[dict[str, Any]]) -> Any:
    for plain in faults:
        fault = converter.structure(plain, Fault)
        if fault.model == "stt":
            recognizer = FaultyRecognizer(
                recognizer, host, fault.model, fault.kind, fault.count, _faults_anywhere(host)
            )
    return recognizer


def _vad_with_faults(vad: Any, host: Any, faults: Sequence[dict[str, Any]]) -> Any:
    for plain in faults:
        fault = converter.structure(plain, Fault)
        if fault.model == "vad":
            vad = FaultyVoiceDetector(vad, host, fault.kind, fault.count, _faults_anywhere(host))
    return vad


def _file_output(path: str | None) -> FileOutput:
    if not path:
        raise OutputError("--output file needs --output-file PATH")
    return FileOutput(path)


def _holds_gpu(on_gpu: bool, on_shutdown: str, host: str, device: Callable[[], str]) -> bool:
    """Whether this process may hold the GPU: not after giving it up, and not when its models
    run on the CPU anyway (`--device cpu`, or no CUDA); a GPU simulated under `--probe trace`
    is held. Off the GPU the guard only watches: there is nothing of ours to give up. With
    `on_shutdown = "exit"` the original behaviour stays whole (a SHUTDOWN whatever the device)."""
    if not on_gpu:
        return False
    return on_shutdown == "exit" or host != "real" or device() == "cuda"


def _socket_lock(socket: str | None, inherited_fd: int | None = None) -> Iterator[SocketLock]:
    """The one-daemon-per-socket lock: taken, or inherited from the process this one
    replaced (so the lock is never free while the daemon re-executes itself)."""
    path = socket or str(default_socket_path())
    lock = None
    if inherited_fd is not None:
        try:
            lock = SocketLock.adopt(path, inherited_fd)
        except ControlError as error:
            log.warning("control: %s; taking the lock anew", error)
    if lock is None:
        lock = SocketLock.take(path)
    try:
        yield lock
    finally:
        lock.release()


CONTROL = "control"  # the control socket's name among the daemon's workers


def supervised_control(
    path: str | Path, handler: Handler, workers: Workers, **options: Any
) -> ControlServer:
    """The control server as one of the daemon's workers: its loop runs on a worker thread
    (restarted when it ends; failed, not fatal, when it cannot be), and what it survives is
    counted in that worker's health, which `status` shows."""

    def spawn(loop: Callable[[], None]) -> None:
        workers.spawn(CONTROL, loop, fatal=False)

    return ControlServer(path, handler, report=workers.reporter(CONTROL), spawn=spawn, **options)


def _control_server(
    socket: str | None, daemon: Daemon, lock: SocketLock, workers: Workers
) -> Iterator[ControlServer]:
    path = socket or str(default_socket_path())
    server = supervised_control(path, daemon.handle, workers, lock=lock)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _dbus_publisher(enabled: bool) -> Iterator[DbusPressurePublisher | None]:
    """The level on the D-Bus session bus, where one exists and jeepney is installed."""
    if not enabled:
        yield None
        return
    try:
        publisher = DbusPressurePublisher()
    except DbusUnavailableError as error:
        log.info("the memory level is not published on D-Bus: %s", error)
        yield None
        return
    log.info("publishing the memory level on the D-Bus session bus as %s", publisher.unique_name)
    try:
        yield publisher
    finally:
        publisher.close()


def _published(recorder: EventSink, publisher: DbusPressurePublisher | None) -> EventSink:
    return recorder if publisher is None else TeeEventSink(recorder, publisher)


def _named(kinds: Sequence[str]) -> list[str]:
    """Each tenant named by its kind, `kind#2` for a second of the same kind."""
    seen: dict[str, int] = {}
    names = []
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        names.append(kind if seen[kind] == 1 else f"{kind}#{seen[kind]}")
    return names


def _tenant_broker(
    tables: Sequence[dict[str, Any]],
    events: EventSink,
    clock: Any,
    probe: Any,
    tuning: Tuning,
    workers: Workers,
) -> Iterator[TenantBroker | None]:
    """The co-tenants of [[tenants]] (None without any); closed before the flight recorder,
    so that asks in flight are recorded."""
    sections = [converter.structure(t, TenantSection) for t in tables]
    if not sections:
        yield None
        return
    specs = []
    for name, section in zip(_named([str(t.kind) for t in sections]), sections, strict=True):
        tenant = http_tenant(str(section.kind), section.url, section.models)
        specs.append(TenantSpec(name, tenant, section.priority, section.idle_only))
        log.info("co-tenant %s at %s", name, tenant.url)
    broker = TenantBroker(
        specs, events, clock, card=probe.sample, wait_s=tuning.tenant_wait_s, workers=workers
    )
    try:
        yield broker
    finally:
        broker.close()


def simulated_tenants(
    tenants: Sequence[SimulatedTenant], events: EventSink, clock: Any
) -> TenantBroker:
    """Replay's co-tenants: asked at once, in the simulation's own time."""
    names = _named([t.kind for t in tenants])
    specs = [TenantSpec(name, tenant) for name, tenant in zip(names, tenants, strict=True)]
    return TenantBroker(specs, events, clock, threaded=False)


def _busy_of(pipeline: DictationPipeline) -> Callable[[], bool]:
    return lambda: pipeline.busy


def _in_speech_of(pipeline: DictationPipeline) -> Callable[[], bool]:
    return lambda: pipeline.in_speech


class Container(containers.DeclarativeContainer):
    config = providers.Configuration()
    # `config.run` holds what is not a configuration key: the mode (daemon, record, replay),
    # the audio file, the selected host and source, the replay's models and start time.
    settings = providers.Dependency(instance_of=DaemonSettings)

    clock = providers.Selector(
        config.run.clock,
        system=providers.Singleton(SystemClock),
        fake=providers.Singleton(FakeClock, config.run.start_s),
    )
    start_time = providers.Selector(
        config.run.clock,
        system=providers.Singleton(time.monotonic),
        fake=providers.Callable(float, config.run.start_s),
    )
    stop = providers.Singleton(StopSignal)

    event_log = providers.Resource(_jsonl_events, config.daemon.events)
    recorder = providers.Selector(
        config.run.events,
        none=providers.Singleton(NullEventSink),
        jsonl=event_log,
    )
    dbus = providers.Resource(_dbus_publisher, config.daemon.dbus)
    # The daemon's level changes also go out on D-Bus; record and replay only record.
    events = providers.Selector(
        config.run.mode,
        daemon=providers.Singleton(_published, recorder, dbus),
        record=recorder,
        replay=recorder,
    )

    thresholds = providers.Singleton(_thresholds, config.thresholds)
    tuning = providers.Singleton(_tuning, config.guard)
    vad_settings = providers.Singleton(_vad_settings, config.vad)

    # -- models ------------------------------------------------------------------------------
    device = providers.Singleton(_device, config.stt.device)
    vad_model = providers.Selector(config.run.vad, silero=providers.Singleton(_silero_residency))
    stt_model = providers.Selector(
        config.stt.engine,
        whisper=providers.Singleton(
            _whisper_residency, config.stt.model, device, config.stt.compute_type
        ),
        nemo=providers.Singleton(_nemo_residency, config.stt.model),
    )
    models = providers.Resource(_loaded_models, vad_model, stt_model, device)
    announced = providers.Singleton(_announced, models, events, clock, start_time)
    host = providers.Selector(
        config.run.host,
        real=announced,
        # Without a GPU, `--probe trace` rehearses residency as replay does.
        simulated=providers.Singleton(
            SimulatedGpuHost, announced, clock, tuning, config.run.on_gpu
        ),
        memory=providers.Singleton(
            InMemoryModelHost,
            clock,
            providers.Callable(_model_states, config.run.models),
            tuning,
        ),
    )

    # -- the guard ---------------------------------------------------------------------------
    nvml = providers.Resource(_nvml, clock, config.daemon.gpu)
    trace_row = providers.Singleton(TraceRowProbe, clock)
    trace_file = providers.Singleton(_trace_file, config.daemon.probe, config.daemon.trace)
    probe = providers.Selector(
        config.daemon.probe,
        none=providers.Singleton(NoProbe, clock),
        nvml=nvml,
        torch=providers.Singleton(TorchCudaProbe, clock, config.daemon.gpu.as_int()),
        host=providers.Singleton(HostMemoryProbe, clock),
        trace=providers.Singleton(
            _trace_probe,
            trace_file,
            clock,
            host,
            config.run.trace_origin,
            config.guard.cuda_context_mib,
            config.run.on_gpu,
        ),
        replay=providers.Singleton(ResidentModelsProbe, trace_row, host),
    )
    holds_gpu = providers.Callable(
        _holds_gpu, config.run.on_gpu, config.run.on_shutdown, config.run.host, device.provider
    )
    policy = providers.Selector(
        config.guard.policy,
        default=providers.Singleton(GuardPolicy, thresholds, tuning, holds_gpu),
        legacy=providers.Singleton(LegacyPolicy),
    )
    recovery = providers.Singleton(RecoveryTracker, tuning)
    # The daemon's supervised threads (the pipeline's, the co-tenant refresher), one health.
    # One that cannot be restarted stops the daemon in order, with its own exit status.
    workers = providers.Singleton(Workers, on_fatal=stop.provided.fail)
    tenant_broker = providers.Resource(
        _tenant_broker, config.tenants, events, clock, probe, tuning, workers
    )
    tenants = providers.Selector(
        config.run.mode,
        daemon=tenant_broker,
        record=providers.Object(None),
        replay=providers.Object(None),  # `simulate` puts replay's simulated tenants here
    )

    # -- dictation ---------------------------------------------------------------------------
    source = providers.Selector(
        config.run.source,
        file=providers.Singleton(
            FileAudioSource,
            config.run.audio_file,
            realtime=config.run.realtime,
            start_sample=config.run.audio_offset,
        ),
        microphone=providers.Singleton(MicrophoneSource, config.audio.device),
    )
    # Capture that can end at the next gap in speech, for a re-execution.
    gap = providers.Singleton(GapStop, source)
    vad = providers.Selector(config.run.vad, silero=providers.Singleton(_silero_detector, host))
    recognizer = providers.Selector(
        config.stt.engine,
        whisper=providers.Singleton(_whisper, host, config.stt.language, config.stt.beam_size),
        nemo=providers.Singleton(_nemo, host, config.stt.language),
    )
    stt = providers.Singleton(_with_faults, recognizer, host, config.run.faults)
    checked_vad = providers.Singleton(_vad_with_faults, vad, host, config.run.faults)
    output = providers.Selector(
        config.output.kind,
        stdout=providers.Singleton(StdoutOutput),
        file=providers.Singleton(_file_output, config.output.file),
        wtype=providers.Singleton(wtype_output),
        xdotool=providers.Singleton(xdotool_output),
    )
    runner = providers.Singleton(RecoveringRunner, host, recovery, events, clock, start_time)
    spool = providers.Singleton(Spool, config.daemon.spool_dir)
    pipeline = providers.Singleton(
        DictationPipeline,
        source=gap,
        vad=checked_vad,
        stt=stt,
        output=output,
        runner=runner,
        events=events,
        spool=spool,
        settings=vad_settings,
        realtime=config.run.realtime,
        start_time=start_time,
        keep_undelivered=providers.Object(append_undelivered),
        workers=workers,
    )
    busy = providers.Selector(
        config.run.mode,
        daemon=providers.Singleton(_busy_of, pipeline),
        record=providers.Object(None),
        replay=providers.Object(None),
    )

    # Whether this process holds the GPU: a SHUTDOWN gives it up, room takes it back (each a
    # re-execution); with guard.on_shutdown = "exit", and in replay, SHUTDOWN stops instead.
    tenure = providers.Object(Tenure())
    gpu_mode = providers.Selector(
        config.run.on_shutdown,
        cpu=providers.Singleton(GpuModeMachine, config.guard.gpu_return_s, tenure),
        exit=providers.Object(None),
    )
    # The daemon's re-execution (SIGHUP, the GPU given up or taken back), which the guard's
    # GPU-mode decisions go to; record and replay never re-execute (nor open a microphone).
    reexec = providers.Singleton(
        Reexecution,
        gap=gap,
        stop=stop,
        events=events,
        policy=policy,
        probe=probe,
        listening=pipeline.provided.enabled,
        in_speech=providers.Singleton(_in_speech_of, pipeline),
        start_time=start_time,
    )
    on_mode_change = providers.Selector(
        config.run.mode,
        daemon=reexec.provided.change_mode,
        record=providers.Object(None),
        replay=providers.Object(None),
    )
    guard = providers.Singleton(
        GuardService,
        probe=probe,
        host=host,
        policy=policy,
        events=events,
        clock=clock,
        recovery=recovery,
        busy=busy,
        on_shutdown=stop.provided.shutdown,
        record_samples=config.run.record_samples,
        start_time=start_time,
        tenants=tenants,
        gpu_mode=gpu_mode,
        context_mib=config.guard.cuda_context_mib,
        on_mode_change=on_mode_change,
    )

    daemon = providers.Singleton(
        Daemon,
        settings,
        providers.Singleton(
            DaemonParts,
            pipeline=pipeline,
            guard=guard,
            events=events,
            stop=stop,
            gap=gap,
            reexec=reexec,
            watchdog_s=providers.Callable(watchdog_interval_s),
            present=providers.Object(status_line),
            notify=providers.Object(notify),
            start_time=start_time,
            listening=config.run.listening,
        ),
    )
    # One daemon per socket: the lock is taken before any model loads and held to the end.
    socket_lock = providers.Resource(_socket_lock, config.control.socket, config.run.lock_fd)
    control_lock = providers.Selector(
        config.run.control, on=socket_lock, off=providers.Object(None)
    )
    control_server = providers.Resource(
        _control_server, config.control.socket, daemon, socket_lock, workers
    )
    control = providers.Selector(config.run.control, on=control_server, off=providers.Object(None))

    simulation = providers.Singleton(
        SimulationRig, clock=clock, row=trace_row, host=host, guard=guard
    )
    trace_writer = providers.Singleton(
        TraceFileWriter, config.run.out, config.run.csv, config.daemon.gpu
    )


_RESOURCES_IN_STOP_ORDER = (
    "control_server",
    "models",
    "tenant_broker",
    "dbus",
    "event_log",
    "nvml",
    "socket_lock",
)


def shutdown(container: Container) -> None:
    """Stops the resources that were started, in order: nothing is answered once the
    models are gone, and the flight recorder is closed last but for the probe."""
    for name in _RESOURCES_IN_STOP_ORDER:
        getattr(container, name).shutdown()


def _run(mode: str, **overrides: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "clock": "system",
        "start_s": 0.0,
        "events": "none",
        "host": "memory",
        "models": [],
        "source": "microphone",
        "vad": "silero",
        "audio_file": None,
        "realtime": False,
        "faults": [],
        "control": "off",
        "record_samples": True,
        "out": None,
        "csv": None,
        "on_shutdown": "exit",  # replay and record: SHUTDOWN is the end of the run
        "on_gpu": True,
        "trace_origin": None,
        "audio_offset": 0,
        "lock_fd": None,
        "listening": True,
        **overrides,
    }


def daemon_container(settings: DaemonSettings, handover: Handover | None = None) -> Container:
    """The daemon's container: nothing is built or started until asked for. `handover`: what
    the process this one replaced handed it (GPU mode, trace clock, file position, lock)."""
    handover = handover or Handover()
    daemon = settings.config.daemon
    plain = converter.unstructure(settings.config)
    socket = settings.config.control.socket
    on_gpu = handover.tenure.mode is GpuMode.ON_GPU
    if not on_gpu:
        plain["stt"]["device"] = "cpu"  # no CUDA in this process: no context on the card
    plain["run"] = _run(
        "daemon",
        events="jsonl" if daemon.events else "none",
        host="simulated" if daemon.probe == ProbeKind.TRACE else "real",
        source="file" if settings.audio_file else "microphone",
        audio_file=settings.audio_file,
        realtime=settings.realtime,
        faults=[converter.unstructure(f) for f in settings.faults],
        # A file run is not a session to control unless a socket is asked for.
        control="off" if settings.audio_file and not socket else "on",
        on_shutdown=settings.config.guard.on_shutdown.value,
        on_gpu=on_gpu,
        trace_origin=handover.trace_origin,
        audio_offset=handover.audio_offset,
        lock_fd=handover.lock_fd,
        listening=handover.listening,
    )
    container = Container(settings=settings)
    container.config.from_dict(plain)
    container.tenure.override(providers.Object(handover.tenure))
    if not on_gpu and daemon.probe == ProbeKind.TORCH:
        # torch reads the card through a CUDA context: the very thing given up.
        reason = "the torch probe needs a CUDA context; off the GPU, use --probe nvml"
        container.probe.override(providers.Singleton(NoProbe, container.clock, reason))
    return container


def make_container(
    probe: str = "none",
    gpu: str = "0",
    policy: str = "default",
    events_path: str | None = None,
    thresholds: Thresholds | None = None,
    tuning: Tuning | None = None,
    out: str | None = None,
    csv: str | None = None,
) -> Container:
    """The guard alone (for `swictation record` with its trace files in `out` and `csv`,
    tests and embedding), on the wall clock."""
    plain = converter.unstructure(DaemonSettings().config)
    plain["daemon"].update(probe=probe, gpu=gpu, events=events_path)
    plain["guard"]["policy"] = policy
    plain["run"] = _run("record", events="jsonl" if events_path else "none", out=out, csv=csv)
    container = Container()
    container.config.from_dict(plain)
    if thresholds is not None:
        container.thresholds.override(providers.Object(thresholds))
    if tuning is not None:
        container.tuning.override(providers.Object(tuning))
    return container


def replay_container(
    start_s: float, models: Sequence[ModelSpec] = (), guard: GuardConfig | None = None
) -> Container:
    """The container with the replayed trace row as the probe, the models in memory as the
    host, and a fake clock from `start_s`; the policy chosen by `guard` as the daemon's is."""
    guard = guard or GuardConfig()
    plain = converter.unstructure(DaemonSettings().config)
    plain["daemon"]["probe"] = "replay"
    plain["guard"]["policy"] = str(guard.policy)
    plain["run"] = _run(
        "replay",
        clock="fake",
        start_s=start_s,
        models=[attrs.asdict(m) for m in models],
        record_samples=False,
    )
    container = Container()
    container.config.from_dict(plain)
    container.thresholds.override(providers.Object(guard.thresholds))
    container.tuning.override(providers.Object(guard.tuning))
    return container


def simulate(
    times: Sequence[float],
    used_mib: Sequence[float],
    total_mib: Sequence[float],
    guard: GuardConfig,
    models: Sequence[ModelSpec] = (),
    *,
    policy: Policy | None = None,
    own_mib: Sequence[float | None] | None = None,
    busy: Callable[[float], bool] | None = None,
    events: EventSink | None = None,
    progress: Callable[[int], None] | None = None,
    series_points: int = 0,
    tenants: Sequence[SimulatedTenant] = (),
) -> SimulationReport:
    """Replay and the policy tests: the guard configured by `guard` (its policy selected by
    the container, or `policy` put in its place) run by the replay container over a trace,
    with `tenants` (their memory part of `used_mib`) asked to release as the policy decides."""
    if len(times) == 0:
        raise ValueError("nothing to simulate: no samples")
    container = replay_container(float(times[0]), models, guard)
    if policy is not None:
        container.policy.override(providers.Object(policy))
    if events is not None:
        container.events.override(providers.Object(events))
    if busy is not None:
        clock = container.clock()
        container.busy.override(providers.Object(lambda: busy(clock.now())))
    if tenants:
        broker = simulated_tenants(tenants, container.events(), container.clock())
        container.tenants.override(providers.Object(broker))
    return run_simulation(
        container.simulation(), times, used_mib, total_mib, own_mib, progress, series_points
    )
