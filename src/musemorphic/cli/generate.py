"""`generate` and `transpose`: music from the models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import app, check_decode_sampled, console, shipped_critic, shipped_model


@app.command()
def generate(
    out: Path = typer.Option(Path("song.mid"), "-o", "--out", help="MIDI file to write."),
    bars: int = typer.Option(32, help="Bars to generate (ignored with --stream)."),
    stream: bool = typer.Option(False, "--stream", help="Generate until interrupted (Ctrl-C), writing as it goes."),
    tempo: Optional[str] = typer.Option(None, help="BPM, e.g. 96, or a class: largo ... presto."),
    key: Optional[str] = typer.Option(None, help='e.g. "D minor", "F#", "Bbm".'),
    time_signature: Optional[str] = typer.Option(None, help="e.g. 3/4."),
    density: Optional[str] = typer.Option(None, help="low, medium or high."),
    style: Optional[str] = typer.Option(None, help="A style the model was trained with (its corpus folders)."),
    prompt: Optional[Path] = typer.Option(None, help="A MIDI file to continue (the output holds the new bars)."),
    programs: Optional[str] = typer.Option(None, help="Track layout as GM programs, e.g. 0,33,-1 (-1 = drums)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature of the prior (0 = most likely; default: the one the model records, 1.0 unless exported with another)."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance weight for the controls (1 = off; 2-3 follows them harder)."),
    seed: int = typer.Option(0, help="Same seed, same music."),
    plot: bool = typer.Option(False, "--plot", help="Also write a piano-roll PNG next to the MIDI file."),
    render: Optional[str] = typer.Option(None, help="Also render audio next to the MIDI file: wav."),
    soundfont: Optional[Path] = typer.Option(None, help="General MIDI .sf2 for --render (default: one found on the system)."),
    codec: Optional[Path] = typer.Option(None, help="Bar codec checkpoint, grid or autoregressive (default: the shipped one)."),
    prior: Optional[Path] = typer.Option(None, help="LatentMamba checkpoint (default: the shipped one)."),
    critic: Optional[Path] = typer.Option(
        None, help="PhraseCritic checkpoint that steers --density, --key and each track's rhythm (default: the shipped one with the shipped codec)."
    ),
    candidates: int = typer.Option(
        8, min=1, help="Prior draws per slot the critic chooses from for --density or --key (1: no density or key steering)."
    ),
    groove_draws: int = typer.Option(
        8, min=1, help="Prior draws per slot the critic chooses from to steer each track's rhythm, when nothing else is "
        "steered (1: off; needs a critic that predicts onset grids, as the shipped one)."
    ),
    groove_distance: float = typer.Option(
        0.125, min=0.0, max=1.0, help="How much each track's rhythm changes from bar to bar, as the share of onset-grid "
        "cells (a sixteenth note in 4/4) aimed at (0: repeat the last bar's rhythm)."
    ),
    scale_lock: float = typer.Option(
        0.25, min=0.0, help="Nats taken off the decoder's score (a grid codec's onset logit) of each note outside the piece's scale whose pitch class no track "
        "sounded in the last --scale-lock-memory bars (0, with --scale-lock-welcome 0 or --scale-lock-memory 0: no lock; 50 with "
        "--scale-lock-memory 0: no note outside the scale but pitches clipped at the range's edges)."
    ),
    scale_lock_memory: int = typer.Option(
        8, min=0, help="Bars a pitch class outside the scale passes the scale lock once some track has sounded it, so the lock "
        "guards the first bar in which a new one would sound (0: every such note pays)."
    ),
    scale_lock_welcome: float = typer.Option(
        0.5, min=0.0, help="Nats added to the decoder's score of each note of a pitch class outside the scale that the "
        "--scale-lock-memory remembers, so chromatic notes return as in real songs rather than stray."
    ),
    decode_temperature: float = typer.Option(
        1.0, min=0.0, help="Temperature at which an autoregressive codec's decoder draws a bar's tokens (0 = greedy decoding; "
        "a grid codec always decodes greedily)."
    ),
    decode_top_p: float = typer.Option(0.9, min=0.01, max=1.0, help="Autoregressive codec: draw from the most likely tokens up to this probability (1 = all)."),
    decode_sampled: str = typer.Option(
        "scale-pitches", help="Which tokens an autoregressive codec's decoder draws: pitches (the rhythm stays greedy), scale-pitches (pitches, "
        "in the scale only: a note outside it is written only where greedy decoding writes it) or all."
    ),
    chunk_bars: int = typer.Option(8, help="Bars between writes of the MIDI file."),
) -> None:
    """Write new music: unconditional, controlled, continued, or endless."""
    import torch

    from musemorphic.generation.generate import MusicGenerator, Request

    font = _soundfont_for(render, soundfont)  # before generating: a missing soundfont fails fast
    check_decode_sampled(decode_sampled)
    torch.set_num_threads(1)
    generator = MusicGenerator.load(
        codec or shipped_model("phrase_vae"),
        prior or shipped_model("latent_mamba"),
        critic or shipped_critic(codec),
        candidates=candidates,
        scale_lock=scale_lock,
        scale_lock_memory=scale_lock_memory,
        scale_lock_welcome=scale_lock_welcome,
        decode_temperature=decode_temperature,
        decode_top_p=decode_top_p,
        decode_sampled=decode_sampled,
        groove_draws=groove_draws,
        groove_distance=groove_distance,
    )
    request = Request(
        bars=None if stream else bars, tempo=tempo, key=key, time_signature=time_signature, density=density,
        style=style, prompt=prompt, temperature=temperature, guidance=guidance, seed=seed,
        programs=[int(p) for p in programs.split(",")] if programs else None,
    )
    try:
        generator.control_classes(request)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    if stream:
        console.print("streaming: press Ctrl-C to stop; the file is valid after every chunk")
    summary = generator.write(request, out, chunk_bars=chunk_bars)
    console.print(f"wrote {summary['path']}: {summary['bars']} bars, {summary['tracks']} tracks, {summary['tempo']:.0f} BPM")
    if plot:
        from musemorphic.evaluation.plots import piano_roll_png

        console.print(f"piano roll: {piano_roll_png(out, out.with_suffix('.png'))}")
    if font is not None:
        from musemorphic.audio.render import render_wav

        console.print(f"audio: {render_wav(out, out.with_suffix('.wav'), font)} (soundfont {font})")


def _soundfont_for(render: Optional[str], soundfont: Optional[Path]) -> Optional[Path]:
    """The soundfont a --render request will use (None without --render)."""
    if render is None:
        return None
    if render != "wav":
        raise typer.BadParameter(f"--render {render!r}: the format offered is wav")
    from musemorphic.audio.render import SoundfontNotFound, find_soundfont

    try:
        return find_soundfont(soundfont)
    except SoundfontNotFound as err:
        raise typer.BadParameter(str(err)) from err


@app.command()
def transpose(
    midi: Path = typer.Argument(..., help="A MIDI file."),
    semitones: int = typer.Option(..., "-k", "--semitones", help="Semitones to move by (negative = down)."),
    out: Path = typer.Option(..., "-o", "--out", help="MIDI file to write."),
    latent: bool = typer.Option(False, "--latent", help="Move through the codec's latent space: decode z + k * d_pitch."),
    codec: Optional[Path] = typer.Option(None, help="Codec checkpoint (grid or autoregressive) for --latent (default: the shipped one)."),
) -> None:
    """Transpose a MIDI file: exactly (note by note), or through the latent space (--latent).

    With --latent each pitched bar is encoded, moved along the codec's transposition
    direction (estimated from the file's own bars) and decoded; drums stay as they are.
    """
    import torch

    from musemorphic.data.midi_io import MidiError, load_score

    try:
        score = load_score(midi)
    except MidiError as err:
        raise typer.BadParameter(str(err)) from err
    if latent:
        from musemorphic.generation.transpose import transpose_song_latent
        from musemorphic.training.grid_codec import load_codec

        torch.set_num_threads(1)
        model, tokenizer = load_codec(codec or shipped_model("phrase_vae"))
        try:
            moved, summary = transpose_song_latent(model, tokenizer, score, semitones)
        except ValueError as err:
            raise typer.BadParameter(f"{midi}: {err}") from err
        note = f"; {summary.bars_silenced} decoded ungrammatical, left silent" if summary.bars_silenced else ""
        note += f"; {summary.bars_too_long} too long for the codec, left as they were" if summary.bars_too_long else ""
        console.print(f"moved {summary.bars_moved} bars through the latent space{note}")
    else:
        moved = score.copy()
        for track in moved.tracks:
            if not track.is_drum:  # notes that would leave 0..127 are dropped, then the rest move
                track.notes.filter(lambda n: 0 <= n.pitch + semitones <= 127, inplace=True)
                track.shift_pitch(semitones, inplace=True)
    moved.dump_midi(str(out))
    console.print(f"wrote {out}")
