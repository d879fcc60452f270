"""The microphone through sounddevice: real PortAudio here (which lists no input device on
this machine), and a real capture where a microphone exists."""

from __future__ import annotations

import itertools

import pytest

from swictation.adapters.microphone import MicrophoneError, MicrophoneSource, pick_device
from tests.conftest import has_microphone


@pytest.mark.skipif(has_microphone(), reason="this machine has a microphone")
def test_no_input_device_is_a_clear_error():
    with pytest.raises(MicrophoneError, match="no microphone: PortAudio lists no input device"):
        MicrophoneSource()


class Devices:
    """sounddevice's device list as it looks on a desktop (this machine has none)."""

    @staticmethod
    def query_devices():
        return [
            {"name": "HDA Intel PCH: ALC295 Analog", "max_input_channels": 2},
            {"name": "HDMI 0", "max_input_channels": 0},
            {"name": "Blue Yeti USB", "max_input_channels": 1},
        ]


def test_devices_are_picked_by_index_or_name_simulated():
    assert pick_device(Devices, None) is None
    assert pick_device(Devices, "2") == 2
    assert pick_device(Devices, "yeti") == 2
    with pytest.raises(MicrophoneError, match="no input device 1"):
        pick_device(Devices, 1)
    with pytest.raises(MicrophoneError, match="no input device matching 'webcam'"):
        pick_device(Devices, "webcam")


@pytest.mark.audio
def test_captures_16k_mono_blocks():
    source = MicrophoneSource()
    blocks = list(itertools.islice(source.blocks(), 10))
    source.close()
    assert all(len(b.samples) == 512 and b.rate == 16000 for b in blocks)
    assert blocks[1].t == pytest.approx(512 / 16000)
