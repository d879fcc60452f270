"""A private PulseAudio server with a null sink: the microphone of the `audio` tests and of
the microphone benchmark, on any machine (scripts/setup-system installs it).

Recordings played into the sink `virt` (paplay, at real-time pace) come out of its monitor,
`virt.monitor`, the server's default source, which PortAudio lists as the ALSA devices
`pulse` and `default`. The server lives in its own directory and answers at its own socket
(`PULSE_SERVER`), so a desktop's own sound server is neither used nor disturbed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

TOOLS = ("pulseaudio", "pactl", "paplay")
ALSA_PULSE_PLUGIN = "libasound_module_pcm_pulse.so"
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins"


def _alsa_pulse_plugin_present() -> bool:
    for root in ("/usr/lib", "/usr/lib64", "/lib"):
        if any(Path(root).glob(f"**/alsa-lib/{ALSA_PULSE_PLUGIN}")):
            return True
    return False


def why_unavailable() -> str | None:
    """Why no private sound server can run here (what is missing), or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not _alsa_pulse_plugin_present():
        missing.append(f"ALSA's pulse plugin ({ALSA_PULSE_PLUGIN})")
    if missing:
        return (
            f"needs a sound server: {', '.join(missing)} not found; install the Debian "
            f"packages {PACKAGES} (scripts/setup-system does, as root)"
        )
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as error:
        return f"needs sounddevice with PortAudio (libportaudio2): {error}"
    return None


class SoundServer:
    """One PulseAudio server process with a null sink; start, kill and start again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "pulse"
        self.socket = self.runtime / "native"
        self.log = root / "pulseaudio.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a program that should use this server."""
        env = dict(os.environ if base is None else base)
        env["PULSE_SERVER"] = self.address
        return env

    def start(self, timeout_s: float = 30.0) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = dict(os.environ)
        # Its own home and runtime directory: nothing of a desktop session is touched.
        env.update(
            HOME=str(self.root),
            XDG_RUNTIME_DIR=str(self.root),
            PULSE_RUNTIME_PATH=str(self.runtime),
        )
        env.pop("PULSE_SERVER", None)
        command = [
            "pulseaudio",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--disable-shm=yes",
            "-n",  # no default.pa: only the modules below
            "--load=module-null-sink sink_name=virt",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            "--log-target=stderr",
        ]
        # As root, PulseAudio warns that it is meant for --system mode; a per-user server in a
        # directory of its own works all the same, and --system would want a system user.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited with status {self.process.returncode}: "
                    f"{self.log.read_text(errors='replace')[-500:]}"
                )
            if self.pactl("info", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"pulseaudio did not answer within {timeout_s:.0f} s")
            time.sleep(0.05)
        self.pactl("set-default-source", "virt.monitor")

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Gone at once, as when a device is pulled: no goodbye to the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def play(self, path: Path | str, timeout_s: float = 120.0) -> None:
        """Plays a recording into the sink at real-time pace; returns when it has played."""
        subprocess.run(
            ["paplay", "--device=virt", str(path)],
            env=self.client_env(),
            check=True,
            timeout=timeout_s,
            capture_output=True,
        )

    def play_in_background(self, path: Path | str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["paplay", "--device=virt", str(path)],
            env=self.client_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
