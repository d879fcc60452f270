"""When speech occupies the models (a restore waits for a gap): rebuilt from an utterance by
the rule the daemon's VAD holds it with, for recordings that do not say what the guard saw."""

from __future__ import annotations

from swictation.domain.segmenter import VadSettings


def utterance_busy(
    end_s: float, spoken_s: float, waited_s: float, vad: VadSettings
) -> tuple[float, float]:
    """(start, end) of an utterance's hold on the models, ending at `end_s` (its text done).

    Its audio (`spoken_s`) runs from `speech_pad_s` before the first voiced sample to
    `end_pad_s` after the last; the VAD held the utterance open from the first voiced
    sample through the pause that ended it (`min_silence_s`), and it then waited and was
    transcribed for `waited_s`.
    """
    voiced = max(0.0, spoken_s - vad.speech_pad_s - vad.end_pad_s)
    return max(0.0, end_s - waited_s - vad.min_silence_s - voiced), end_s
