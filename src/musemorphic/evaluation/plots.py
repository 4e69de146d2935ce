"""Piano-roll pictures of MIDI files: one colour per track, bar lines."""

from __future__ import annotations

from pathlib import Path

import symusic


def bar_lines(score: symusic.Score) -> list[int]:
    """Start tick of every bar up to the score's end, from its time signatures (4/4 by default)."""
    tpq = score.ticks_per_quarter
    changes = sorted((int(ts.time), ts.numerator, ts.denominator) for ts in score.time_signatures) or [(0, 4, 4)]
    if changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))
    end = score.end()
    lines = []
    for i, (start, num, den) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else end
        length = max(1, num * tpq * 4 // den)
        lines.extend(range(start, max(stop, start + 1), length))
    return [t for t in lines if t <= end]


def piano_roll_png(midi: str | Path, out: str | Path, max_bars: int | None = 64) -> Path:
    """Draw the first `max_bars` bars of a MIDI file (all when None) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    score = symusic.Score(str(midi))
    lines = bar_lines(score)
    limit = lines[max_bars] if max_bars is not None and len(lines) > max_bars else score.end()
    fig, ax = plt.subplots(figsize=(14, 5), dpi=100)
    colours = plt.get_cmap("tab10")
    legend = []
    for i, track in enumerate(score.tracks):
        colour = colours(i % 10)
        for n in track.notes:
            if n.time < limit:
                ax.add_patch(Rectangle((n.time, n.pitch - 0.4), max(n.duration, 1), 0.8, color=colour, alpha=0.8))
        label = f"track {i}: " + ("drums" if track.is_drum else f"program {track.program}")
        legend.append(Patch(color=colour, label=label))
    for t in lines:
        if t <= limit:
            ax.axvline(t, color="0.8", linewidth=0.6, zorder=0)
    pitches = [n.pitch for t in score.tracks for n in t.notes if n.time < limit] or [60]
    ax.set_xlim(0, max(limit, 1))
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlabel(f"ticks ({score.ticks_per_quarter} per quarter); grey lines = bars")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(Path(midi).name)
    if legend:
        ax.legend(handles=legend, loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
