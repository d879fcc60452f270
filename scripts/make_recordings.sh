#!/usr/bin/env bash
# Writes the speech recordings the demo and the tests use (espeak-ng and sox, Debian's
# packages). The outputs are committed; run this only to change them.
set -euo pipefail
cd "$(dirname "$0")/.."
audio=examples/audio
fixtures=tests/fixtures/audio
mkdir -p "$audio" "$fixtures"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # voice, speed, text, output (16 kHz mono)
    espeak-ng -v "$1" -s "$2" -w "$tmp/raw.wav" "$3"
    sox "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$4"
}
silence() { # seconds, output
    sox -n -r 16000 -c 1 -b 16 "$2" trim 0.0 "$1"
}

# The demo: five sentences with pauses between them, about 25 seconds.
parts=()
i=0
while IFS= read -r sentence; do
    say en-us 150 "$sentence" "$tmp/s$i.wav"
    silence 1.5 "$tmp/p$i.wav"
    parts+=("$tmp/s$i.wav" "$tmp/p$i.wav")
    i=$((i + 1))
done <<'TEXT'
Good morning. Please open a new document.
The meeting with the design team starts at ten o'clock.
Remember to send the report to Maria before lunch.
The weather today is cold and windy with some rain.
Thank you. That is all for now.
TEXT
silence 0.5 "$tmp/lead.wav"
sox "$tmp/lead.wav" "${parts[@]}" "$audio/dictation.wav"

# Several voices, one sentence each.
say en-us 150 "The weather today is cold and windy with some rain." "$fixtures/voice-us.wav"
say en-gb 140 "Please send the report to the team before lunch." "$fixtures/voice-gb.wav"
say en-us+f3 150 "Remember to buy milk, bread and coffee on the way home." \
    "$fixtures/voice-female.wav"

# A pause-separated pair of sentences.
say en-us 150 "Open the window." "$tmp/a.wav"
say en-us 150 "Close the door behind you." "$tmp/b.wav"
silence 2.0 "$tmp/gap.wav"
silence 0.3 "$tmp/lead.wav"
sox "$tmp/lead.wav" "$tmp/a.wav" "$tmp/gap.wav" "$tmp/b.wav" "$tmp/gap.wav" "$fixtures/pair.wav"

# 48 kHz stereo, as a desktop microphone records, and FLAC.
espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" "Good morning. Please open a new document."
sox "$tmp/raw.wav" -r 48000 -c 2 -b 16 "$fixtures/stereo-48k.wav"
sox "$fixtures/voice-us.wav" "$fixtures/voice-us.flac"

# Held-out speech: sentences and a voice that nothing was tuned on (the latency benchmark's
# accuracy check), with commas that make short pauses and sentence pauses of 1.0 to 1.8 s.
heldout=()
pauses=(1.0 1.3 1.8 1.1 1.5)
i=0
while IFS= read -r sentence; do
    say en-us+m3 165 "$sentence" "$tmp/h$i.wav"
    silence "${pauses[$i]}" "$tmp/hp$i.wav"
    heldout+=("$tmp/h$i.wav" "$tmp/hp$i.wav")
    i=$((i + 1))
done <<'TEXT'
Please book a table for dinner on Friday evening.
The train to the airport leaves every hour, so we should not be late.
Can you check whether the printer on the second floor is working again?
I think the new version of the app is much faster than the old one.
Call me back when you have finished reading the contract.
TEXT
silence 0.4 "$tmp/lead.wav"
sox "$tmp/lead.wav" "${heldout[@]}" "$audio/heldout.wav"

# Hesitant speech: each sentence has a pause in the middle (0.45 to 0.7 s heard, with the
# 0.35 s of quiet espeak-ng leaves after each fragment; shorter than the 0.8 s that ends an
# utterance), where a dictation must not cut it.
hesitant=()
i=0
while IFS='|' read -r first second pause; do
    say en-us+m3 160 "$first" "$tmp/ha$i.wav"
    say en-us+m3 160 "$second" "$tmp/hb$i.wav"
    silence "$pause" "$tmp/hm$i.wav"
    silence 1.4 "$tmp/he$i.wav"
    hesitant+=("$tmp/ha$i.wav" "$tmp/hm$i.wav" "$tmp/hb$i.wav" "$tmp/he$i.wav")
    i=$((i + 1))
done <<'TEXT'
I would like to order|a large pizza with mushrooms.|0.25
When you get home|please feed the cat.|0.15
The package should arrive|sometime next week.|0.3
Let me know|if you need anything else.|0.1
TEXT
silence 0.4 "$tmp/lead.wav"
sox "$tmp/lead.wav" "${hesitant[@]}" "$audio/hesitant.wav"
