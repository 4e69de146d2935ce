"""What every command shares: the Typer apps, the console, progress bars, where models live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="MuseMorphic: latent-space symbolic music generation.", no_args_is_help=True)
tokenizer_app = typer.Typer(help="REMI+ tokenizer and its BPE.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")
train_app = typer.Typer(help="Train a model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Measure a model.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
experiment_app = typer.Typer(help="Research experiments from the design documents.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
analyze_app = typer.Typer(help="Look inside a trained model.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


def _another_rank() -> bool:
    """Whether this process is a torchrun worker other than rank 0 (which alone speaks)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False


console = Console(stderr=True, quiet=_another_rank())


def progress_bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def train_with_progress(task, config, out: Path, rate) -> None:
    """Run the shared training loop under a progress bar whose rate column shows `rate(row)`,
    then say how the run ended and where its checkpoint and log are."""
    from musemorphic.training.loop import leave_process_group, train

    with progress_bar("training") as bar:
        job = bar.add_task("training", total=config.steps, rate="")
        result = train(task, config, progress=lambda done, total, row: bar.update(job, completed=done, rate=rate(row)))
    leave_process_group()
    state = "stopped at the time limit" if result.stopped_early else "done"
    console.print(f"{state} after {result.steps_done} steps; checkpoint: {out / 'checkpoint'}; log: {out / 'log.csv'}")


def run_prepare(corpus: list[Path], out: Path, config, label: str = "preparing", tokenizer=None) -> None:
    import time

    from musemorphic.data.prepare import prepare

    start = time.perf_counter()
    with progress_bar(label) as bar:
        task = bar.add_task(label, total=None, rate="")

        def on_file(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} files/s")

        report = prepare(corpus, out, config, progress=on_file, tokenizer=tokenizer)
    console.print(
        f"[bold]{out}[/]: {report.songs} songs, {report.phrases} phrases "
        f"({report.new_songs} new); {report.skipped} files skipped"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(report.reasons.items()))})" if report.reasons else "")
    )
    if report.skipped:
        console.print(f"reasons per file: {out / 'skipped.json'}")


def codec_of(codec: Path, data: Path):
    """The bar codec of a checkpoint folder, checked to read `data`'s token ids (the same
    tokenizer; for a GridCodec, which reads base tokens, the same base vocabulary)."""
    from musemorphic.data.tokenizer import PhraseTokenizer
    from musemorphic.models.grid_codec import GridCodec
    from musemorphic.training.grid_codec import load_codec

    model, tokenizer = load_codec(codec)
    theirs = data / "tokenizer.json"
    if not theirs.is_file():
        return model
    other = PhraseTokenizer.load(theirs)
    same = other.base_vocab == tokenizer.base_vocab if isinstance(model, GridCodec) else other.to_json() == tokenizer.to_json()
    if not same:
        raise typer.BadParameter(
            f"{data}: its tokenizer differs from the codec's ({codec}); prepare the data with `--tokenizer {codec}`", param_hint="--codec"
        )
    return model


def check_decode_sampled(value: str) -> None:
    """A --decode-sampled value the generator knows, or a BadParameter naming the choices."""
    from musemorphic.generation.generate import DECODE_SAMPLED_CHOICES

    if value not in DECODE_SAMPLED_CHOICES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(DECODE_SAMPLED_CHOICES)}", param_hint="--decode-sampled")


def shipped_critic(codec: Optional[Path]) -> Optional[Path]:
    """The shipped PhraseCritic when the codec is the shipped one (a critic learns one codec)."""
    return shipped_model("phrase_critic") if codec is None else None


def model_path(path: Path, name: str) -> Path:
    """A checkpoint folder as given, or the shipped `name` model for the word 'shipped'."""
    return shipped_model(name) if str(path) == "shipped" else path


def shipped_model(name: str) -> Path:
    from importlib import resources

    path = Path(str(resources.files("musemorphic") / "pretrained" / name))
    if not path.is_dir():
        raise typer.BadParameter(f"no shipped {name} model in this installation ({path}); pass a CHECKPOINT folder")
    return path
