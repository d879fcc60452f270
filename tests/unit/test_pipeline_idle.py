"""Nothing spent while silent: blocks below the energy gate never wake the VAD, speech
always does, and the models are warmed up once at load."""

from __future__ import annotations

import numpy as np

from swictation.adapters.memory import EnergyVoiceDetector, ScriptedRecognizer
from swictation.application.config import load_settings
from swictation.ports import AudioBlock
from tests.unit.parts import BLOCK, RATE, audio, build, run_all


class CountingVad(EnergyVoiceDetector):
    def __init__(self) -> None:
        super().__init__(0.05)
        self.calls = 0

    def speech_probability(self, block):
        self.calls += 1
        return super().speech_probability(block)


def quiet_room(seconds: float, dbfs: float) -> list[AudioBlock]:
    rms = 10 ** (dbfs / 20)
    noise = np.random.default_rng(3).normal(0.0, rms, int(seconds * RATE)).astype(np.float32)
    return [AudioBlock(i / RATE, noise[i : i + BLOCK]) for i in range(0, len(noise), BLOCK)]


def test_a_quiet_room_never_wakes_the_vad_and_speech_always_does(tmp_path):
    blocks = quiet_room(3.0, -70)
    speech = audio(("speech", 0.8), ("silence", 1.0))
    offset = len(blocks) * BLOCK / RATE
    blocks += [AudioBlock(b.t + offset, b.samples) for b in speech]
    vad = CountingVad()
    pipeline, output, _, _, _ = build(blocks, ["heard"], tmp_path)
    pipeline._vad = vad
    run_all(pipeline)
    assert output.lines == ["heard"]
    quiet_blocks = round(3.0 * RATE / BLOCK)
    assert pipeline.gated_blocks >= quiet_blocks  # the room, and the digital silence after
    speech_blocks = round(0.8 * RATE / BLOCK)
    assert vad.calls >= speech_blocks
    assert vad.calls <= len(blocks) - quiet_blocks


def test_the_gate_can_be_opened_to_run_the_vad_on_every_block(tmp_path):
    # The configured key, as a user sets it, reaches the pipeline's gate.
    settings = load_settings(None, {"SWICTATION_VAD_ENERGY_GATE_DBFS": "-120"}, default_file=False)
    blocks = quiet_room(1.0, -70)
    vad = CountingVad()
    pipeline, _, _, _, _ = build(blocks, [], tmp_path, vad=vad, settings=settings.vad)
    pipeline.warm_up()  # its one VAD call is not a block of the stream
    warm_up_calls = vad.calls
    run_all(pipeline)
    assert vad.calls - warm_up_calls == len(blocks)
    assert pipeline.gated_blocks == 0


class Warmable(ScriptedRecognizer):
    def __init__(self, texts):
        super().__init__(texts)
        self.warmed = 0

    def warm_up(self):
        self.warmed += 1


def test_models_are_warmed_up_once_and_the_warm_up_is_not_an_utterance(tmp_path):
    stt = Warmable(["only this"])
    pipeline, output, _, _, _ = build(
        audio(("speech", 0.6), ("silence", 1.0)), [], tmp_path, stt=stt
    )
    pipeline.warm_up()
    run_all(pipeline)
    assert stt.warmed == 1
    assert output.lines == ["only this"]
    assert pipeline.stats.utterances == 1
