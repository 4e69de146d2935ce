"""`prepare` and `tokenizer`: MIDI corpora to phrase datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import app, console, model_path, run_prepare, tokenizer_app


@app.command()
def prepare(
    corpus: list[Path] = typer.Argument(..., help="Folders (or files) of MIDI, searched recursively."),
    out: Path = typer.Option(..., "-o", "--out", help="Dataset folder to create or resume."),
    workers: int = typer.Option(2, help="Parallel worker processes."),
    vocab_size: Optional[int] = typer.Option(None, help="BPE vocabulary size (default: from corpus size)."),
    styles_csv: Optional[Path] = typer.Option(None, help="CSV with columns path,style (default: top folder)."),
    max_bars: int = typer.Option(4096, help="Skip files longer than this many bars."),
    tokenizer: Optional[Path] = typer.Option(
        None, help="Take this tokenizer instead of learning a BPE: a tokenizer.json, a PhraseVAE checkpoint folder, or "
        "'shipped' (the bundled codec's), so that codec and the models trained on its codes can learn this corpus.",
    ),
) -> None:
    """Tokenize a MIDI corpus into a sharded phrase dataset (resumable)."""
    from musemorphic.data.midi_io import Limits
    from musemorphic.data.prepare import PrepareConfig

    config = PrepareConfig(workers=workers, vocab_size=vocab_size, styles_csv=styles_csv, limits=Limits(max_bars=max_bars))
    run_prepare(corpus, out, config, tokenizer=_given_tokenizer(tokenizer) if tokenizer is not None else None)


def _given_tokenizer(path: Path):
    """The tokenizer of a tokenizer.json, of a PhraseVAE checkpoint folder, or of the shipped codec ('shipped')."""
    from musemorphic.data.prepare import check_base_vocabulary
    from musemorphic.data.tokenizer import PhraseTokenizer
    from musemorphic.training.checkpoint import read_checkpoint_config

    path = model_path(path, "phrase_vae")
    if path.is_file():
        tokenizer = PhraseTokenizer.load(path)
    elif not (path / "config.json").is_file():
        raise typer.BadParameter(f"{path}: neither a tokenizer.json nor a checkpoint folder", param_hint="--tokenizer")
    else:
        saved = read_checkpoint_config(path)
        if "tokenizer" not in saved:
            raise typer.BadParameter(f"{path}: a checkpoint without a tokenizer (a PhraseVAE's has one)", param_hint="--tokenizer")
        tokenizer = PhraseTokenizer.from_json(saved["tokenizer"])
    try:
        check_base_vocabulary(tokenizer)
    except ValueError as error:
        raise typer.BadParameter(f"{path}: {error}", param_hint="--tokenizer") from None
    return tokenizer


@tokenizer_app.command("train")
def tokenizer_train(
    dataset: Path = typer.Argument(..., help="A folder made by `musemorphic prepare`."),
    vocab_size: Optional[int] = typer.Option(None, help="BPE vocabulary size (default: from corpus size)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Where to write (default: DATASET/tokenizer.json)."),
) -> None:
    """(Re)train the BPE of a prepared dataset on its train split."""
    import numpy as np

    from musemorphic.data.dataset import load_shards
    from musemorphic.data.prepare import PrepareConfig, train_tokenizer

    if not (dataset / "dataset.json").exists():
        raise typer.BadParameter(f"{dataset}: not a prepared dataset (no dataset.json)")
    shard = load_shards(dataset)
    train_songs = np.flatnonzero(np.array([s["split"] == "train" for s in shard.songs]))
    tokenizer = train_tokenizer(shard, train_songs, PrepareConfig(vocab_size=vocab_size))
    path = out or dataset / "tokenizer.json"
    tokenizer.save(path)
    console.print(f"{path}: BPE vocabulary {tokenizer.vocab_size} (base {tokenizer.base_vocab_size})")
