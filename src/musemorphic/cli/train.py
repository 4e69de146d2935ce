"""`train`: the codec, the prior and the critic, through the shared training loop."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from musemorphic.cli.common import codec_of, console, model_path, progress_bar, train_app, train_with_progress


@train_app.command("phrase-vae")
def train_phrase_vae(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    out: Path = typer.Option(Path("runs/phrase_vae"), "-o", "--out", help="Run folder (resumes if it holds a checkpoint)."),
    codec: Optional[str] = typer.Option(
        None, help="grid (one-pass decoder over the bar's note grid; the default) or autoregressive (the seed's token decoder); "
        "with --init or a run to resume, that codec's kind."),
    preset: str = typer.Option("small", help="Model size: tiny, small (<= 5M parameters) or full (the seed's)."),
    steps: int = typer.Option(3000, help="Optimizer steps in all (the autoregressive codec's curriculum is spread over them)."),
    batch_size: int = typer.Option(64, help="Phrases per step (per process under torchrun)."),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for weights, batches and augmentation."),
    minutes: Optional[float] = typer.Option(None, help="Stop with a checkpoint after this much wall time."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on for CUDA)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Transpose / velocity / tempo augmentation."),
    threads: int = typer.Option(1, help="CPU threads for torch (1 is fastest on small shared-core machines)."),
    factorize: float = typer.Option(0.0, help="Weight of the pitch/time factorization regulariser (0 = off)."),
    init: Optional[Path] = typer.Option(None, help="Start from this codec checkpoint's weights (its kind and size; an autoregressive one in its VAE stage; 'shipped': the bundled generator's codec)."),
    dropout: Optional[float] = typer.Option(None, help="Dropout (default: the preset's; the shipped codec used 0.1)."),
    beta_per: str = typer.Option("token", help="Weigh the KL against one token (the shipped codec's) or a whole phrase (the seed's loss; sharper codes the prior handles worse)."),
    decoder_noise: float = typer.Option(0.0, min=0.0, help="Add noise of std up to this (drawn per bar) to the decoder's latent (0 = off; autoregressive: in the VAE stage): a decoder that writes good bars from latents a prior samples."),
    freeze_encoder: bool = typer.Option(False, "--freeze-encoder", help="With --init: train the decoder only, so the codes (and a prior trained on them) stay valid."),
    keep_every: Optional[int] = typer.Option(None, min=1, help="Also keep the weights every this many steps in OUT/snapshots/ (to measure a learning curve)."),
    beta: Optional[float] = typer.Option(None, min=0.0, help="KL weight (default: 0.1 per bar for grid, 0.01 per token for autoregressive)."),
    velocity_levels: int = typer.Option(8, min=1, max=32, help="grid: velocity levels a note is written with."),
) -> None:
    """Train a bar codec. grid (the default): a one-pass decoder of each position and pitch's
    onset, with each note's duration and velocity level, trained on the bar's ELBO with a KL
    weight beta. autoregressive: the seed's PhraseVAE, with the three-stage curriculum
    (infilling, autoencoder, VAE).

    With --init, training goes on from a trained model (its size and dropout, not --preset)
    and skips straight to the VAE stage at full beta, weighed as that model's training weighed
    it: e.g. to add --factorize to a trained codec. A run folder that holds a checkpoint resumes
    with the model and curriculum saved there (--preset, --init, --factorize, --dropout and
    --beta-per then do nothing). The shipped codec is `--steps 4000 --dropout 0.1`.
    `--init CODEC --freeze-encoder --decoder-noise 1.0` retrains only CODEC's decoder, on
    noisy latents, keeping its codes.
    """
    import torch

    from musemorphic.data.augment import AugmentConfig
    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.data.phrase_batches import PhraseBatcher
    from musemorphic.models.phrase_vae import PhraseVAE, PhraseVAEConfig
    from musemorphic.training.checkpoint import checkpoint_exists, read_checkpoint_config
    from musemorphic.training.loop import TrainConfig
    from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae, load_phrase_vae

    if codec not in (None, "grid", "autoregressive"):
        raise typer.BadParameter(f"--codec must be grid or autoregressive, not {codec!r}")
    given = _codec_kind(init, out)
    if codec is not None and given is not None and codec != given:
        raise typer.BadParameter(f"--codec {codec}: the run to resume or the --init checkpoint is a {given} codec", param_hint="--codec")
    codec = codec or given or "grid"
    if codec == "grid":
        only_autoregressive = {"--factorize": factorize > 0, "--dropout": dropout is not None, "--beta-per": beta_per != "token"}
        used = [name for name, given in only_autoregressive.items() if given]
        if used:
            raise typer.BadParameter(f"{', '.join(used)}: only for --codec autoregressive")
        if freeze_encoder and init is None:
            raise typer.BadParameter("--freeze-encoder needs --init: an untrained encoder would stay untrained")
        return _train_grid_codec(data, out, preset, steps, batch_size, lr, seed, minutes, device, bf16, augment, threads,
                                 keep_every, beta, velocity_levels, init, decoder_noise, freeze_encoder)
    if beta_per not in ("phrase", "token"):
        raise typer.BadParameter(f"--beta-per must be phrase or token, not {beta_per!r}")
    if freeze_encoder and init is None:
        raise typer.BadParameter("--freeze-encoder needs --init: an untrained encoder would stay untrained")
    if freeze_encoder and factorize > 0:
        raise typer.BadParameter("--factorize shapes the encoder's codes; it cannot train with --freeze-encoder")
    torch.set_num_threads(threads)
    dataset = PhraseDataset(data, split="train")
    torch.manual_seed(seed)
    if checkpoint_exists(out / "checkpoint"):  # go on as the run began, whatever today's defaults
        saved = read_checkpoint_config(out / "checkpoint")
        model = PhraseVAE(PhraseVAEConfig.from_dict(saved["model"]), torch.from_numpy(dataset.tokenizer.music_features()))
        curriculum = CurriculumConfig.from_dict(saved["curriculum"])
        preset = f"resumed with the model and curriculum saved in {out / 'checkpoint'}"
    elif init is not None:
        init = model_path(init, "phrase_vae")
        model, tokenizer = load_phrase_vae(init)
        if tokenizer.to_json() != dataset.tokenizer.to_json():
            raise typer.BadParameter(f"{init}: its tokenizer differs from {data}'s; prepare the data with that tokenizer")
        trained_with = CurriculumConfig.from_dict(read_checkpoint_config(init)["curriculum"])
        curriculum = CurriculumConfig.fine_tune(
            factorize=factorize, beta_per=trained_with.beta_per, decoder_noise=decoder_noise, freeze_encoder=freeze_encoder,
            **({} if beta is None else {"beta": beta}),
        )
        preset = f"from {init}"
    else:
        model = build_phrase_vae(dataset.tokenizer, preset, **({} if dropout is None else {"dropout": dropout}))
        curriculum = CurriculumConfig(factorize=factorize, beta_per=beta_per, decoder_noise=decoder_noise,
                                      **({} if beta is None else {"beta": beta}))
    batcher = PhraseBatcher(dataset, model.config.max_len, AugmentConfig() if augment else None)
    task = PhraseVAETask(model, batcher, total_steps=steps, batch_size=batch_size, seed=seed, curriculum=curriculum)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         max_minutes=minutes, device=device, bf16=bf16, warmup_steps=min(200, steps // 10), keep_every=keep_every)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"PhraseVAE {preset}: {n_params / 1e6:.2f}M parameters; {len(batcher)} training phrases; {out}")

    def rate(row: dict) -> str:
        factor = f" fact {row['factorization']:.3f}" if "factorization" in row else ""
        return f"loss {row['loss']:.3f} acc {row['token_accuracy']:.3f} kl {row['kl']:.1f}{factor}"

    train_with_progress(task, config, out, rate)


def _codec_kind(init: Optional[Path], out: Path) -> Optional[str]:
    """The codec kind a run goes on with: the saved run's, else the --init checkpoint's (None: neither)."""
    from musemorphic.training.checkpoint import checkpoint_exists, read_checkpoint_config

    for folder in (out / "checkpoint", model_path(init, "phrase_vae") if init is not None else None):
        if folder is not None and checkpoint_exists(folder):
            return read_checkpoint_config(folder).get("codec", "autoregressive")
    return None


def _train_grid_codec(data: Path, out: Path, preset: str, steps: int, batch_size: int, lr: float, seed: int, minutes, device: str,
                      bf16, augment: bool, threads: int, keep_every, beta, velocity_levels: int, init: Optional[Path],
                      decoder_noise: float, freeze_encoder: bool) -> None:
    """`train phrase-vae --codec grid`."""
    import torch

    from musemorphic.data.augment import AugmentConfig
    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.data.phrase_batches import PhraseBatcher
    from musemorphic.models.grid_codec import GridCodec, GridCodecConfig
    from musemorphic.training.checkpoint import checkpoint_exists, read_checkpoint_config
    from musemorphic.training.grid_codec import GridCodecTask, GridTrainingConfig, build_grid_codec, load_codec
    from musemorphic.training.loop import TrainConfig

    torch.set_num_threads(threads)
    dataset = PhraseDataset(data, split="train")
    torch.manual_seed(seed)
    if checkpoint_exists(out / "checkpoint"):  # go on as the run began, whatever today's defaults
        saved = read_checkpoint_config(out / "checkpoint")
        model, training = GridCodec(GridCodecConfig.from_dict(saved["model"])), GridTrainingConfig.from_dict(saved["training"])
        preset = f"resumed with the model and training settings saved in {out / 'checkpoint'}"
    elif init is not None:
        init = model_path(init, "phrase_vae")
        model, tokenizer = load_codec(init)
        if tokenizer.base_vocab != dataset.tokenizer.base_vocab:
            raise typer.BadParameter(f"{init}: its base vocabulary differs from {data}'s", param_hint="--init")
        trained = GridTrainingConfig.from_dict(read_checkpoint_config(init).get("training", {}))
        training = GridTrainingConfig.fine_tune(trained, decoder_noise=decoder_noise, freeze_encoder=freeze_encoder,
                                                **({} if beta is None else {"beta": beta}))
        preset = f"from {init}"
    else:
        model = build_grid_codec(dataset.tokenizer, preset, velocity_levels=velocity_levels, data=dataset)
        training = GridTrainingConfig(decoder_noise=decoder_noise, **({} if beta is None else {"beta": beta}))
    batcher = PhraseBatcher(dataset, max_len=1 << 30, augment=AugmentConfig() if augment else None, bucket_size=max(len(dataset), 1))
    task = GridCodecTask(model, batcher, total_steps=steps, batch_size=batch_size, seed=seed, training=training)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed, max_minutes=minutes, device=device,
                         bf16=bf16, warmup_steps=min(200, steps // 10), keep_every=keep_every)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"GridCodec {preset}: {n_params / 1e6:.2f}M parameters; {len(batcher)} training phrases; {out}")
    train_with_progress(task, config, out, lambda row: f"loss {row['loss']:.1f} f1 {row['note_f1']:.3f} kl {row['kl']:.0f}")


@train_app.command("latent-mamba")
def train_latent_mamba(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    codec: Path = typer.Option(..., help="Codec checkpoint folder (grid or autoregressive) whose latents the prior learns ('shipped': the bundled generator's codec)."),
    out: Path = typer.Option(Path("runs/latent_mamba"), "-o", "--out", help="Run folder (resumes if it holds a checkpoint)."),
    preset: str = typer.Option("small", help="tiny, small, or full (the seed's 8 x 256)."),
    head: str = typer.Option("gmm", help="gmm (a sampled Gaussian mixture) or mse (the regression baseline)."),
    steps: int = typer.Option(2000, help="Optimizer steps."),
    batch_size: int = typer.Option(8, help="Song windows per step."),
    window: int = typer.Option(192, help="Slots (bar x track latents) per training window."),
    song_starts: float = typer.Option(0.5, help="Share of training windows that open at a song's first bar."),
    key_normalize: bool = typer.Option(True, "--key-normalize/--no-key-normalize", help="Learn songs moved to C major / A minor; generation moves them to the requested key."),
    track_memory: float = typer.Option(
        0.0, help="Decay of each track's moving average of latents, given to the prior (0 = off; experimental, see BENCHMARKS.md)."
    ),
    min_log_scale: float = typer.Option(-3.0, help="Floor of the mixture components' log-scales (-7 reproduces priors trained before the floor)."),
    silence_head: bool = typer.Option(
        False, "--silence-head/--no-silence-head", help="Predict each slot's chance of a silent bar apart from the mixture of sounding ones."
    ),
    input_noise: float = typer.Option(
        0.0, min=0.0, help="Noise (largest std, drawn per window) on the latents the prior reads in training, as its own samples miss the codes."
    ),
    init: Optional[Path] = typer.Option(
        None, help="Start from this LatentMamba checkpoint's weights and architecture ('shipped': the bundled prior; "
        "fine-tuning: --preset, --head, --track-memory, --min-log-scale, --silence-head and --key-normalize then come from it).",
    ),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for weights and batches."),
    minutes: Optional[float] = typer.Option(None, help="Stop with a checkpoint after this much wall time."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Train LatentMamba on the phrase latents of a dataset (encoded once and cached)."""
    import collections

    import torch

    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.models.codec_identity import codec_record, learned_from
    from musemorphic.training.latent_mamba import (
        LatentMambaTask,
        LatentSongWindows,
        build_latent_mamba,
        fine_tuned_latent_mamba,
        load_latent_mamba,
    )
    from musemorphic.training.latents import cached_latents
    from musemorphic.training.loop import TrainConfig

    torch.set_num_threads(threads)
    codec = model_path(codec, "phrase_vae")
    codec_model = codec_of(codec, data)
    start = None
    if init is not None:
        init = model_path(init, "latent_mamba")
        start, start_record = load_latent_mamba(init)
        if not learned_from(start_record, codec_model):
            raise typer.BadParameter(f"{init} was trained on the latents of another codec than {codec}", param_hint="--init")
        key_normalize = start.config.key_normalized
    with progress_bar("encoding phrases") as bar:
        job = bar.add_task("encoding", total=None, rate="")
        latents = cached_latents(codec_model, codec, data, progress=lambda d, t: bar.update(job, completed=d, total=t), key_normalized=key_normalize)
    dataset = PhraseDataset(data, split=None)
    train_split = PhraseDataset(data, split="train")
    torch.manual_seed(seed)
    if not 0.0 <= track_memory < 1.0:
        raise typer.BadParameter(f"--track-memory must be in [0, 1), got {track_memory}")
    if start is None:
        model = build_latent_mamba(
            dataset, preset, head=head, d_latent=codec_model.config.d_latent, key_normalized=key_normalize, track_memory_decay=track_memory,
            min_log_scale=min_log_scale, input_noise=input_noise, silence_head=silence_head,
        )
    else:
        model = fine_tuned_latent_mamba(start, input_noise=input_noise)
    windows = LatentSongWindows(train_split, latents, model.config, window_slots=window, song_start_share=song_starts)
    layouts = collections.Counter(tuple(s["programs"]) for s in train_split.songs)
    record = {**codec_record(codec_model), "default_programs": list(layouts.most_common(1)[0][0])}
    task = LatentMambaTask(model, windows, batch_size=batch_size, seed=seed, codec_config=record)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         max_minutes=minutes, device=device, warmup_steps=min(200, steps // 10))
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"LatentMamba {preset} ({head}): {n_params / 1e6:.2f}M parameters; {len(windows.songs)} songs; {out}")
    train_with_progress(task, config, out, lambda row: f"loss {row['loss']:.3f}")


@train_app.command("phrase-critic")
def train_phrase_critic(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    codec: Path = typer.Option(..., help="Codec checkpoint folder (grid or autoregressive) whose decodings the critic learns ('shipped': the bundled generator's codec)."),
    out: Path = typer.Option(Path("runs/phrase_critic"), "-o", "--out", help="Run folder (resumes if it holds a checkpoint)."),
    phrases: int = typer.Option(30000, help="Training phrases to decode (once, cached in the dataset folder)."),
    steps: int = typer.Option(4000, help="Optimizer steps."),
    batch_size: int = typer.Option(256, help="Latents per step."),
    key_normalize: bool = typer.Option(
        True, "--key-normalize/--no-key-normalize", help="Latents of songs moved to C major / A minor, as the prior's."
    ),
    onset_cells: int = typer.Option(
        16, min=0, help="Cells (a quarter of a beat each) of the onset grid it predicts, which steers each track's rhythm (0: none)."
    ),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for weights and batches."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Train the PhraseCritic that steers generation towards a requested density or key, and each track's rhythm."""
    import torch

    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig
    from musemorphic.models.codec_identity import codec_record
    from musemorphic.training.loop import TrainConfig
    from musemorphic.training.phrase_critic import PhraseCriticTask, critic_table

    torch.set_num_threads(threads)
    codec = model_path(codec, "phrase_vae")
    codec_model = codec_of(codec, data)
    with progress_bar("decoding phrases") as bar:
        job = bar.add_task("decoding", total=None, rate="")
        progress = lambda done, total: bar.update(job, completed=done, total=total)  # noqa: E731
        latents, facts = critic_table(codec_model, codec, data, "train", phrases, key_normalize, progress, onset_cells)
    torch.manual_seed(seed)
    thresholds = list(PhraseDataset(data, split="train").density_thresholds)
    model = PhraseCritic(
        PhraseCriticConfig(
            d_latent=codec_model.config.d_latent, density_thresholds=thresholds, key_normalized=key_normalize, onset_cells=onset_cells
        )
    )
    record = codec_record(codec_model, decodings=True)
    task = PhraseCriticTask(model, latents, facts, batch_size=batch_size, seed=seed, codec_config=record)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                         warmup_steps=min(200, steps // 10), zclip=False)
    console.print(f"PhraseCritic: {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters; {len(latents)} phrases; {out}")
    train_with_progress(task, config, out, lambda row: f"loss {row['loss']:.4f}")
