"""Command line: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="MuseMorphic: latent-space symbolic music generation.", no_args_is_help=True)
tokenizer_app = typer.Typer(help="REMI+ tokenizer and its BPE.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")
console = Console(stderr=True)


def _progress_bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _run_prepare(corpus: list[Path], out: Path, config, label: str = "preparing") -> None:
    import time

    from musemorphic.data.prepare import prepare

    start = time.perf_counter()
    with _progress_bar(label) as bar:
        task = bar.add_task(label, total=None, rate="")

        def on_file(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} files/s")

        report = prepare(corpus, out, config, progress=on_file)
    console.print(
        f"[bold]{out}[/]: {report.songs} songs, {report.phrases} phrases "
        f"({report.new_songs} new); {report.skipped} files skipped"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(report.reasons.items()))})" if report.reasons else "")
    )
    if report.skipped:
        console.print(f"reasons per file: {out / 'skipped.json'}")


@app.command()
def prepare(
    corpus: list[Path] = typer.Argument(..., help="Folders (or files) of MIDI, searched recursively."),
    out: Path = typer.Option(..., "-o", "--out", help="Dataset folder to create or resume."),
    workers: int = typer.Option(2, help="Parallel worker processes."),
    vocab_size: Optional[int] = typer.Option(None, help="BPE vocabulary size (default: from corpus size)."),
    styles_csv: Optional[Path] = typer.Option(None, help="CSV with columns path,style (default: top folder)."),
    max_bars: int = typer.Option(4096, help="Skip files longer than this many bars."),
) -> None:
    """Tokenize a MIDI corpus into a sharded phrase dataset (resumable)."""
    from musemorphic.data.midi_io import Limits
    from musemorphic.data.prepare import PrepareConfig

    config = PrepareConfig(workers=workers, vocab_size=vocab_size, styles_csv=styles_csv, limits=Limits(max_bars=max_bars))
    _run_prepare(corpus, out, config)


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
        _run_prepare([corpus], data_dir, PrepareConfig(workers=1))
    data = PhraseDataset(data_dir, split=None)
    song = int(np.argmax([s["n_notes"] for s in data.shard.songs]))
    meta = data.shard.songs[song]
    augmenter = Augmenter(data.tokenizer, AugmentConfig())
    aug = Augmentation(transpose=transpose, velocity_factor=1.0, tempo_factor=1.0)
    tracks = [
        TrackTokens(program=program, bars=[augmenter.apply(p, program, aug).tolist() for p in bars])
        for program, bars in zip(meta["programs"], data.song_grid(song), strict=True)
    ]
    score = data.tokenizer.decode_song(SongTokens(tracks=tracks, bar_ticks=[]))
    path = out / f"{Path(meta['source']).stem}_transposed{transpose:+d}.mid"
    score.dump_midi(str(path))
    console.print(f"rebuilt {meta['source']} from {meta['n_bars']} bars x {len(tracks)} tracks of phrases")
    console.print(f"song controls: {meta['controls']}")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    app()
