"""MIDI to audio through symusic's synthesizer and a General MIDI soundfont on this machine.

Nothing is downloaded: the soundfont is the one given, else `$MUSEMORPHIC_SOUNDFONT`, else the
first found in the usual places (Debian's `fluid-soundfont-gm` installs
/usr/share/sounds/sf2/FluidR3_GM.sf2). Without one, `SoundfontNotFound` says what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import symusic

SOUNDFONT_ENV = "MUSEMORPHIC_SOUNDFONT"
SEARCH_DIRS = (
    "/usr/share/sounds/sf2",
    "/usr/share/soundfonts",
    "/usr/local/share/soundfonts",
    "/opt/homebrew/share/soundfonts",
    "~/.local/share/soundfonts",
)
PREFERRED = ("FluidR3_GM.sf2", "default-GM.sf2", "default.sf2")
PEAK = 0.95  # louder renders are scaled down to this peak instead of clipping


class SoundfontNotFound(FileNotFoundError):
    def __init__(self, detail: str = ""):
        super().__init__(
            (detail + "\n" if detail else "")
            + "no General MIDI soundfont found. Install one, e.g. on Debian/Ubuntu "
            "`sudo apt install fluid-soundfont-gm`, or pass --soundfont FILE.sf2 "
            f"(or set {SOUNDFONT_ENV})."
        )


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The soundfont to render with (see the module docstring for the search order)."""
    chosen = explicit or os.environ.get(SOUNDFONT_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise SoundfontNotFound(f"{path}: no such soundfont file")
        return path
    for directory in SEARCH_DIRS:
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            continue
        for name in PREFERRED:
            if (folder / name).is_file():
                return folder / name
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".sf2", ".sf3") and p.is_file())
        if found:
            return found[0]
    raise SoundfontNotFound()


def render_wav(midi: str | Path, out: str | Path, soundfont: str | Path, sample_rate: int = 44100) -> Path:
    """Render a MIDI file to a 16-bit stereo WAV file."""
    score = symusic.Score(str(midi))
    audio = symusic.Synthesizer(str(soundfont), sample_rate).render(score, stereo=True)  # (2, samples)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > PEAK:
        audio = audio * (PEAK / peak)
    out = Path(out)
    symusic.dump_wav(str(out), np.asfortranarray(audio, dtype=np.float32), sample_rate)
    return out
