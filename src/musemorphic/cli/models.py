"""`export` and `demo`: shipping a model and trying the data pipeline."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import app, console, run_prepare


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint folder."),
    out: Path = typer.Argument(..., help="Folder to write: weights (fp16) and config, no optimizer state."),
    fp32: bool = typer.Option(False, "--fp32", help="Keep float32 weights."),
    temperature: Optional[float] = typer.Option(
        None, min=0.0, help="For a LatentMamba: record this as the sampling temperature generation uses by default."
    ),
) -> None:
    """Make a shippable copy of a checkpoint (as the package's bundled models are made)."""
    import torch

    from musemorphic.training.checkpoint import export_model, read_checkpoint_config

    if temperature is not None and read_checkpoint_config(checkpoint).get("kind") != "latent_mamba":
        raise typer.BadParameter(f"{checkpoint} is not a LatentMamba checkpoint; only a prior samples with a temperature")
    model_overrides = {} if temperature is None else {"temperature": temperature}
    export_model(checkpoint, out, torch.float32 if fp32 else torch.float16, model_overrides)
    size = sum(p.stat().st_size for p in out.iterdir())
    console.print(f"{out}: {size / 2**20:.1f} MiB")


@app.command()
def demo(
    out: Path = typer.Option(Path("musemorphic-demo"), "-o", "--out", help="Folder for the results."),
    transpose: int = typer.Option(2, help="Semitones to transpose the example by."),
) -> None:
    """Run the data pipeline end to end on the bundled example songs.

    Prepares a dataset from the examples, then rebuilds one song from its phrases,
    transposed through the augmentation path, and writes it as MIDI.
    """
    from importlib import resources

    import numpy as np

    from musemorphic.data.augment import Augmentation, Augmenter, AugmentConfig
    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.data.prepare import PrepareConfig
    from musemorphic.data.tokenizer import SongTokens, TrackTokens

    examples = resources.files("musemorphic") / "examples"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "examples"
        corpus.mkdir()
        for item in examples.iterdir():
            if item.name.endswith(".mid"):
                (corpus / item.name).write_bytes(item.read_bytes())
        data_dir = out / "dataset"
        shutil.rmtree(data_dir, ignore_errors=True)
        run_prepare([corpus], data_dir, PrepareConfig(workers=1))
    data = PhraseDataset(data_dir, split=None)
    song = int(np.argmax([s["n_notes"] for s in data.shard.songs]))
    meta = data.shard.songs[song]
    augmenter = Augmenter(data.tokenizer, AugmentConfig())
    aug = Augmentation(transpose=transpose, velocity_factor=1.0, tempo_factor=1.0)
    tracks = [
        TrackTokens(program=program, bars=[augmenter.apply(p, program, aug).tolist() for p in bars])
        for program, bars in data.song_tracks(song)
    ]
    score = data.tokenizer.decode_song(SongTokens(tracks=tracks, bar_ticks=[]))
    path = out / f"{Path(meta['source']).stem}_transposed{transpose:+d}.mid"
    score.dump_midi(str(path))
    console.print(f"rebuilt {meta['source']} from {meta['n_bars']} bars x {len(tracks)} tracks of phrases")
    console.print(f"song controls: {meta['controls']}")
    console.print(f"wrote {path}")
