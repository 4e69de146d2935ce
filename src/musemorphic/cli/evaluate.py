"""`eval`: codec figures and the generation report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import check_decode_sampled, console, eval_app, progress_bar, shipped_critic, shipped_model


@eval_app.command("phrase-vae")
def eval_phrase_vae(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint folder (default: the shipped model)."),
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    split: str = typer.Option("test", help="train, valid or test."),
    max_bars: Optional[int] = typer.Option(None, help="Evaluate a seeded sample of this many bars."),
    prior_samples: int = typer.Option(512, help="Bars decoded from z ~ N(0, I) for the validity figure."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Reconstruction, latent and prior figures of a bar codec (grid or autoregressive) on held-out songs."""
    import json

    import torch

    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.evaluation.phrase_vae import evaluate_codec
    from musemorphic.models.grid_codec import GridCodec
    from musemorphic.training.grid_codec import load_codec

    torch.set_num_threads(1)
    model, tokenizer = load_codec(checkpoint or shipped_model("phrase_vae"))
    dataset = PhraseDataset(data, split=split)
    if isinstance(model, GridCodec) and dataset.tokenizer.base_vocab != tokenizer.base_vocab:
        raise typer.BadParameter(f"{data}: its base vocabulary differs from the codec's", param_hint="--data")
    if dataset.tokenizer.to_json() != tokenizer.to_json():
        if not isinstance(model, GridCodec):
            console.print("[yellow]note:[/] the dataset's BPE differs from the model's; bars are re-encoded with the model's")
        dataset.tokenizer = tokenizer
    with progress_bar("evaluating") as bar:
        job = bar.add_task("evaluating", total=None, rate="")
        report = evaluate_codec(
            model, dataset, max_bars=max_bars, prior_samples=prior_samples,
            progress=lambda done, total: bar.update(job, completed=done, total=total),
        )
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    for name, value in report.to_dict().items():
        if isinstance(value, dict):  # prior faults: one line per reason
            console.print(f"{name:>22}:" + ("" if value else " none" if report.prior_samples else " (no samples)"))
            for reason, count in value.items():
                console.print(f"{count:>24}  {reason}", markup=False)
            continue
        console.print(f"{name:>22}: {value:.4f}" if isinstance(value, float) else f"{name:>22}: {value}")


@eval_app.command("generate")
def eval_generate(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`: its test split (or --reference) is the reference."),
    model: Optional[Path] = typer.Option(
        None, help="A folder with phrase_vae/, latent_mamba/ and optionally phrase_critic/ checkpoints (default: the shipped model)."
    ),
    codec: Optional[Path] = typer.Option(None, help="Bar codec checkpoint (overrides --model's)."),
    prior: Optional[Path] = typer.Option(None, help="LatentMamba checkpoint (overrides --model's)."),
    critic: Optional[Path] = typer.Option(None, help="PhraseCritic checkpoint (overrides --model's phrase_critic/, if any)."),
    out: Path = typer.Option(Path("runs/eval_generate"), "-o", "--out", help="Report folder: report.md, report.json, metrics.png, pieces/."),
    pieces: int = typer.Option(48, help="Pieces to generate."),
    bars: int = typer.Option(16, help="Bars per piece."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature of the prior (default: the one the model records)."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance weight for the controls in the control table."),
    scale_lock: float = typer.Option(0.25, min=0.0, help="The generator's scale lock (see `generate --help`)."),
    scale_lock_memory: int = typer.Option(8, min=0, help="Bars the scale lock lets a chromatic pitch class through once sounded (see `generate --help`)."),
    scale_lock_welcome: float = typer.Option(0.5, min=0.0, help="Nats the scale lock adds to the chromatic pitch classes it remembers (see `generate --help`)."),
    decode_temperature: float = typer.Option(1.0, min=0.0, help="The codec's sampling temperature (see `generate --help`)."),
    decode_top_p: float = typer.Option(0.9, min=0.01, max=1.0, help="The nucleus of sampled decoding (see `generate --help`)."),
    decode_sampled: str = typer.Option("scale-pitches", help="The tokens sampled decoding draws: pitches, scale-pitches or all (see `generate --help`)."),
    groove_draws: int = typer.Option(8, min=1, help="Prior draws per slot groove steering chooses from (see `generate --help`)."),
    groove_distance: float = typer.Option(0.125, min=0.0, max=1.0, help="The rhythm change groove steering aims at (see `generate --help`)."),
    train_songs: int = typer.Option(200, help="Training songs sampled for the real-vs-real ceiling."),
    control_seeds: int = typer.Option(2, help="Pieces per value of each control for the control table (0: skip it)."),
    seed: int = typer.Option(0, help="Seed of the first piece and of the sampled sets."),
    reference: str = typer.Option(
        "test", help="The held-out split the pieces are measured against: test (to report) or valid (to choose settings by)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Generate pieces and compare them with held-out real music: metrics, phrase FID, controls."""
    import json

    import torch

    from musemorphic.evaluation.generation_report import REFERENCE_SPLITS, GenerationEvalConfig, evaluate_generation
    from musemorphic.generation.generate import MusicGenerator

    if reference not in REFERENCE_SPLITS:
        raise typer.BadParameter(f"{' or '.join(REFERENCE_SPLITS)}, got {reference!r}", param_hint="--reference")
    check_decode_sampled(decode_sampled)
    torch.set_num_threads(1)
    if critic is None and codec is None and model is None:
        critic = shipped_critic(None)
    elif critic is None and codec is None and (model / "phrase_critic").is_dir():
        critic = model / "phrase_critic"
    codec = codec or (model / "phrase_vae" if model else shipped_model("phrase_vae"))
    prior = prior or (model / "latent_mamba" if model else shipped_model("latent_mamba"))
    generator = MusicGenerator.load(
        codec, prior, critic, scale_lock=scale_lock, scale_lock_memory=scale_lock_memory,
        scale_lock_welcome=scale_lock_welcome, decode_temperature=decode_temperature, decode_top_p=decode_top_p,
        decode_sampled=decode_sampled, groove_draws=groove_draws, groove_distance=groove_distance,
    )
    config = GenerationEvalConfig(pieces=pieces, bars=bars, temperature=temperature, guidance=guidance, train_songs=train_songs,
                                  control_seeds=control_seeds, seed=seed, reference=reference)
    with progress_bar("evaluating") as bar:
        jobs = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in jobs:
                jobs[stage] = bar.add_task(stage, total=total, rate=stage)
            bar.update(jobs[stage], completed=done, total=total)

        report = evaluate_generation(generator, data, out, config, progress)
    if as_json:
        print(json.dumps(report))
        return
    from rich.markdown import Markdown

    console.print(Markdown((out / "report.md").read_text()))
    console.print(f"report: {out / 'report.md'} (and report.json, metrics.png, pieces/)")
