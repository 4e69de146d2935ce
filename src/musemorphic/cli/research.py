"""`experiment` and `analyze`: the design documents' experiments and looks inside a model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import analyze_app, console, experiment_app, progress_bar, shipped_model


@experiment_app.command("factorization")
def experiment_factorization(
    toy: bool = typer.Option(False, "--toy", help="Random binary blobs (seed 001's toy) instead of real music."),
    data: Optional[Path] = typer.Option(None, help="A prepared dataset: windows of its tracks as piano rolls."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Run folder (default: runs/factorization_toy or _music)."),
    steps: int = typer.Option(1000, help="Optimizer steps."),
    batch_size: Optional[int] = typer.Option(None, help="Inputs per step (default: 256 toy, 128 music)."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (default: 4e-3 toy, 2e-3 music)."),
    lejepa: bool = typer.Option(False, "--lejepa", help="Add LeJEPA: attraction between views plus SIGReg."),
    held_out: int = typer.Option(500, help="Held-out inputs the figures are measured on."),
    seed: int = typer.Option(0, help="Seed for weights and batches."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the seed's PNGs into the run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Seed 001: train an encoder whose pitch and time shifts become orthogonal directions."""
    import json

    import torch

    from musemorphic.experiments.factorization import (
        music_windows, run_factorization, toy_held_out, toy_inputs, window_inputs,
    )
    from musemorphic.training.factorization import FactorizationConfig
    from musemorphic.training.loop import TrainConfig

    if toy == (data is not None):
        raise typer.BadParameter("pass exactly one of --toy and --data DATASET_DIR")
    torch.set_num_threads(1)
    if toy:
        preset, inputs, held = "toy", toy_inputs, toy_held_out(held_out)
        shifts = FactorizationConfig(max_pitch_shift=4, max_time_shift=4, lejepa=lejepa)
        description = {"source": "random blobs", "size": held.shape[1]}
    else:
        preset = "roll"
        with console.status("cutting piano-roll windows"):
            inputs = window_inputs(music_windows(data, "train", 32, 20_000, seed))
            held = music_windows(data, "test", 32, held_out, seed + 1)
        shifts = FactorizationConfig(max_pitch_shift=6, max_time_shift=4, lejepa=lejepa)
        description = {"source": str(data), "window_steps": 32}
    out = out or Path("runs/factorization_toy" if toy else "runs/factorization_music")
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size or (256 if toy else 128),
                         lr=lr or (4e-3 if toy else 2e-3), seed=seed, warmup_steps=min(100, steps // 10), log_every=50)
    with progress_bar("training") as bar:
        job = bar.add_task("training", total=steps, rate="")
        result = run_factorization(inputs, held, preset, shifts, config, description,
                                   progress=lambda d, t, row: bar.update(job, completed=d, rate=f"loss {row['loss']:.3f}"))
    figures = {**result.figures.to_dict(), "steps": result.steps, "train_seconds": result.seconds}
    if plots:
        from musemorphic.evaluation.factorization_plots import factorization_pngs

        factorization_pngs(result.figures, out, "blobs" if toy else "piano rolls")
    if as_json:
        print(json.dumps(figures))
        return
    _print_factorization(figures)
    console.print(f"checkpoint: {result.checkpoint}" + (f"; plots in {out}" if plots else ""))


def _print_factorization(figures: dict) -> None:
    labels = {
        "cross_abs_cos": "mean |cos(pitch, time)|   (ideal 0)",
        "same_sign_cos": "mean same-sign cos        (ideal +1)",
        "opposite_sign_cos": "mean opposite-sign cos    (ideal -1)",
        "pitch_angle_deg": "pitch +/- mean angle, deg (ideal 180)",
        "time_angle_deg": "time +/- mean angle, deg  (ideal 180)",
        "first_sv_share": "first singular value share of shift grids",
    }
    for key, label in labels.items():
        console.print(f"{label:<45} {figures[key]:8.3f}")


@analyze_app.command("latents")
def analyze_latents(
    checkpoint: Optional[Path] = typer.Argument(None, help="A PhraseVAE or piano-roll encoder checkpoint (default: the shipped PhraseVAE)."),
    data: Optional[Path] = typer.Option(None, help="A prepared dataset (not needed for a toy encoder)."),
    split: str = typer.Option("test", help="Which split's bars or windows to measure on."),
    items: int = typer.Option(500, help="Bars (or rolls) to measure on."),
    out: Path = typer.Option(Path("latent-analysis"), "-o", "--out", help="Folder for the PNGs."),
    seed: int = typer.Option(0, help="Seed for the sample and the shift sizes."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Seed 001's figures and plots for a latent space: how transposition and time shift move it."""
    import json

    import torch

    from musemorphic.evaluation.factorization import measure_factorization
    from musemorphic.evaluation.factorization_plots import factorization_pngs
    from musemorphic.training.checkpoint import read_checkpoint_config

    torch.set_num_threads(1)
    checkpoint = checkpoint or shipped_model("phrase_vae")
    saved = read_checkpoint_config(checkpoint)
    kind = saved.get("kind")
    if kind == "pianoroll_encoder":
        from musemorphic.experiments.factorization import load_roll_encoder, music_windows, roll_embed, toy_held_out

        model, config = load_roll_encoder(checkpoint)
        toy = config["data"]["source"] == "random blobs"
        if not toy and data is None:
            raise typer.BadParameter("this encoder was trained on music: pass --data DATASET_DIR")
        rolls = toy_held_out(items) if toy else music_windows(data, split, model.config.width, items, seed)
        shifts = config["factorization"]
        embed, n = roll_embed(model, rolls), len(rolls)
        title = "blobs" if toy else "piano rolls"
    elif kind == "phrase_vae" and saved.get("codec", "autoregressive") != "autoregressive":
        raise typer.BadParameter(f"{checkpoint}: `analyze latents` reads autoregressive PhraseVAEs; this is a {saved['codec']} codec")
    elif kind == "phrase_vae":
        if data is None:
            raise typer.BadParameter("a PhraseVAE is measured on bars of a dataset: pass --data DATASET_DIR")
        from musemorphic.data.dataset import PhraseDataset
        from musemorphic.evaluation.latent_transposition import phrase_embed, pitched_bars
        from musemorphic.training.phrase_vae import CurriculumConfig, load_phrase_vae

        model, tokenizer = load_phrase_vae(checkpoint)
        dataset = PhraseDataset(data, split=split)
        if dataset.tokenizer.to_json() != tokenizer.to_json():
            raise typer.BadParameter(f"{data}: its tokenizer differs from the model's")
        bars, programs = pitched_bars(dataset, items, seed, model.config.max_len)
        if not bars:
            raise typer.BadParameter(f"{data}: no pitched bar in split {split!r}")
        embed, n = phrase_embed(model, tokenizer, bars, programs), len(bars)
        shifts = CurriculumConfig.from_dict(saved["curriculum"]).to_dict()  # the shift sizes it trained with
        title = "PhraseVAE"
    else:
        raise typer.BadParameter(f"{checkpoint}: a {kind!r} checkpoint has no latent space to analyze")
    with console.status(f"measuring {n} inputs"):
        figures = measure_factorization(embed, n, shifts["max_pitch_shift"], shifts["max_time_shift"], seed=seed)
        paths = factorization_pngs(figures, out, title)
    if as_json:
        print(json.dumps(figures.to_dict()))
        return
    _print_factorization(figures.to_dict())
    console.print("wrote " + ", ".join(str(p) for p in paths))
