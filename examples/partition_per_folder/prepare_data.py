"""Inputs for the partition-per-folder example: tiny WAV recordings laid out as
`<user>/<genre>/<name>.wav`, written with the standard library's `wave` module.

Not every user has every genre, as in real collections.
"""

from __future__ import annotations

import math
import shutil
import struct
import wave
from pathlib import Path

LIBRARY = {
    "alice": ["jazz", "rock"],
    "bob": ["rock"],
    "carol": ["classical", "jazz"],
}
SAMPLE_RATE = 8000
SECONDS = 0.25


def write_recordings(folder: Path, tracks: int) -> None:
    """Write `tracks` recordings for each user and genre, each a sine tone of its own pitch
    and loudness. Does nothing when the folder already holds exactly those recordings."""
    expected = sorted(
        f"{user}/{genre}/track-{number:02d}.wav"
        for user, genres in LIBRARY.items()
        for genre in genres
        for number in range(tracks)
    )
    if sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.wav")) == expected:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for number, relative in enumerate(expected):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_tone(path, pitch=220.0 + 20.0 * number, loudness=0.1 + 0.8 * (number % 5) / 4)


def _write_tone(path: Path, pitch: float, loudness: float) -> None:
    frames = int(SAMPLE_RATE * SECONDS)
    samples = (
        round(32767 * loudness * math.sin(2 * math.pi * pitch * frame / SAMPLE_RATE))
        for frame in range(frames)
    )
    with wave.open(str(path), "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(SAMPLE_RATE)
        recording.writeframes(struct.pack(f"<{frames}h", *samples))
