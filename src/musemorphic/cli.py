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
train_app = typer.Typer(help="Train a model.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Measure a model.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
experiment_app = typer.Typer(help="Research experiments from the design documents.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
analyze_app = typer.Typer(help="Look inside a trained model.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")
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


def _train_with_progress(task, config, out: Path, rate) -> None:
    """Run the shared training loop under a progress bar whose rate column shows `rate(row)`,
    then say how the run ended and where its checkpoint and log are."""
    from musemorphic.training.loop import train

    with _progress_bar("training") as bar:
        job = bar.add_task("training", total=config.steps, rate="")
        result = train(task, config, progress=lambda done, total, row: bar.update(job, completed=done, rate=rate(row)))
    state = "stopped at the time limit" if result.stopped_early else "done"
    console.print(f"{state} after {result.steps_done} steps; checkpoint: {out / 'checkpoint'}; log: {out / 'log.csv'}")


def _run_prepare(corpus: list[Path], out: Path, config, label: str = "preparing", tokenizer=None) -> None:
    import time

    from musemorphic.data.prepare import prepare

    start = time.perf_counter()
    with _progress_bar(label) as bar:
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
    _run_prepare(corpus, out, config, tokenizer=_given_tokenizer(tokenizer) if tokenizer is not None else None)


def _given_tokenizer(path: Path):
    """The tokenizer of a tokenizer.json, of a PhraseVAE checkpoint folder, or of the shipped codec ('shipped')."""
    from musemorphic.data.prepare import check_base_vocabulary
    from musemorphic.data.tokenizer import PhraseTokenizer
    from musemorphic.training.checkpoint import read_checkpoint_config

    path = _model_path(path, "phrase_vae")
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


@train_app.command("phrase-vae")
def train_phrase_vae(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    out: Path = typer.Option(Path("runs/phrase_vae"), "-o", "--out", help="Run folder (resumes if it holds a checkpoint)."),
    preset: str = typer.Option("small", help="Model size: tiny, small (<= 5M parameters) or full (the seed's)."),
    steps: int = typer.Option(3000, help="Optimizer steps in all (the curriculum is spread over them)."),
    batch_size: int = typer.Option(64, help="Phrases per step (per process under torchrun)."),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for weights, batches and augmentation."),
    minutes: Optional[float] = typer.Option(None, help="Stop with a checkpoint after this much wall time."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on for CUDA)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Transpose / velocity / tempo augmentation."),
    threads: int = typer.Option(1, help="CPU threads for torch (1 is fastest on small shared-core machines)."),
    factorize: float = typer.Option(0.0, help="Weight of the pitch/time factorization regulariser (0 = off)."),
    init: Optional[Path] = typer.Option(None, help="Start from this PhraseVAE checkpoint's weights, in the VAE stage ('shipped': the bundled codec)."),
    dropout: Optional[float] = typer.Option(None, help="Dropout (default: the preset's; the shipped codec used 0.1)."),
    beta_per: str = typer.Option("token", help="Weigh the KL against one token (the shipped codec's) or a whole phrase (the seed's loss; sharper codes the prior handles worse)."),
    decoder_noise: float = typer.Option(0.0, min=0.0, help="In the VAE stage, add noise of std up to this to the decoder's latent (0 = off): a decoder that writes good bars from latents a prior samples."),
    freeze_encoder: bool = typer.Option(False, "--freeze-encoder", help="With --init: train the decoder only, so the codes (and a prior trained on them) stay valid."),
    keep_every: Optional[int] = typer.Option(None, min=1, help="Also keep the weights every this many steps in OUT/snapshots/ (to measure a learning curve)."),
) -> None:
    """Train a PhraseVAE with the three-stage curriculum (infilling, autoencoder, VAE).

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
        init = _model_path(init, "phrase_vae")
        model, tokenizer = load_phrase_vae(init)
        if tokenizer.to_json() != dataset.tokenizer.to_json():
            raise typer.BadParameter(f"{init}: its tokenizer differs from {data}'s; prepare the data with that tokenizer")
        trained_with = CurriculumConfig.from_dict(read_checkpoint_config(init)["curriculum"])
        curriculum = CurriculumConfig.fine_tune(
            factorize=factorize, beta_per=trained_with.beta_per, decoder_noise=decoder_noise, freeze_encoder=freeze_encoder
        )
        preset = f"from {init}"
    else:
        model = build_phrase_vae(dataset.tokenizer, preset, **({} if dropout is None else {"dropout": dropout}))
        curriculum = CurriculumConfig(factorize=factorize, beta_per=beta_per, decoder_noise=decoder_noise)
    batcher = PhraseBatcher(dataset, model.config.max_len, AugmentConfig() if augment else None)
    task = PhraseVAETask(model, batcher, total_steps=steps, batch_size=batch_size, seed=seed, curriculum=curriculum)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         max_minutes=minutes, device=device, bf16=bf16, warmup_steps=min(200, steps // 10), keep_every=keep_every)
    n_params = sum(p.numel() for p in model.parameters())
    console.print(f"PhraseVAE {preset}: {n_params / 1e6:.2f}M parameters; {len(batcher)} training phrases; {out}")

    def rate(row: dict) -> str:
        factor = f" fact {row['factorization']:.3f}" if "factorization" in row else ""
        return f"loss {row['loss']:.3f} acc {row['token_accuracy']:.3f} kl {row['kl']:.1f}{factor}"

    _train_with_progress(task, config, out, rate)


@train_app.command("latent-mamba")
def train_latent_mamba(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    codec: Path = typer.Option(..., help="PhraseVAE checkpoint folder whose latents the prior learns ('shipped': the bundled codec)."),
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
    from musemorphic.models.phrase_vae import codec_record, learned_codes_of
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
    codec = _model_path(codec, "phrase_vae")
    codec_model = _codec_of(codec, data)
    start = None
    if init is not None:
        init = _model_path(init, "latent_mamba")
        start, start_record = load_latent_mamba(init)
        if not learned_codes_of(start_record, codec_model):
            raise typer.BadParameter(f"{init} was trained on the latents of another codec than {codec}", param_hint="--init")
        key_normalize = start.config.key_normalized
    with _progress_bar("encoding phrases") as bar:
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
    _train_with_progress(task, config, out, lambda row: f"loss {row['loss']:.3f}")


def _codec_of(codec: Path, data: Path):
    """The PhraseVAE of a checkpoint folder, checked to read `data`'s token ids (the same tokenizer)."""
    from musemorphic.data.tokenizer import PhraseTokenizer
    from musemorphic.training.phrase_vae import load_phrase_vae

    model, tokenizer = load_phrase_vae(codec)
    theirs = data / "tokenizer.json"
    if theirs.is_file() and PhraseTokenizer.load(theirs).to_json() != tokenizer.to_json():
        raise typer.BadParameter(
            f"{data}: its tokenizer differs from the codec's ({codec}); prepare the data with `--tokenizer {codec}`", param_hint="--codec"
        )
    return model


@train_app.command("phrase-critic")
def train_phrase_critic(
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    codec: Path = typer.Option(..., help="PhraseVAE checkpoint folder whose decodings the critic learns ('shipped': the bundled codec)."),
    out: Path = typer.Option(Path("runs/phrase_critic"), "-o", "--out", help="Run folder (resumes if it holds a checkpoint)."),
    phrases: int = typer.Option(30000, help="Training phrases to decode (once, cached in the dataset folder)."),
    steps: int = typer.Option(4000, help="Optimizer steps."),
    batch_size: int = typer.Option(256, help="Latents per step."),
    key_normalize: bool = typer.Option(
        True, "--key-normalize/--no-key-normalize", help="Latents of songs moved to C major / A minor, as the prior's."
    ),
    lr: float = typer.Option(1e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed for weights and batches."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    threads: int = typer.Option(1, help="CPU threads for torch."),
) -> None:
    """Train the PhraseCritic that steers generation towards a requested density or key."""
    import torch

    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig
    from musemorphic.models.phrase_vae import codec_record
    from musemorphic.training.loop import TrainConfig
    from musemorphic.training.phrase_critic import PhraseCriticTask, critic_table

    torch.set_num_threads(threads)
    codec = _model_path(codec, "phrase_vae")
    codec_model = _codec_of(codec, data)
    with _progress_bar("decoding phrases") as bar:
        job = bar.add_task("decoding", total=None, rate="")
        progress = lambda done, total: bar.update(job, completed=done, total=total)  # noqa: E731
        latents, facts = critic_table(codec_model, codec, data, "train", phrases, key_normalize, progress)
    torch.manual_seed(seed)
    thresholds = list(PhraseDataset(data, split="train").density_thresholds)
    model = PhraseCritic(
        PhraseCriticConfig(d_latent=codec_model.config.d_latent, density_thresholds=thresholds, key_normalized=key_normalize)
    )
    record = codec_record(codec_model)
    task = PhraseCriticTask(model, latents, facts, batch_size=batch_size, seed=seed, codec_config=record)
    config = TrainConfig(out_dir=str(out), steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                         warmup_steps=min(200, steps // 10), zclip=False)
    console.print(f"PhraseCritic: {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters; {len(latents)} phrases; {out}")
    _train_with_progress(task, config, out, lambda row: f"loss {row['loss']:.4f}")


def _check_decode_sampled(value: str) -> None:
    from musemorphic.generation.generate import DECODE_SAMPLED_CHOICES

    if value not in DECODE_SAMPLED_CHOICES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(DECODE_SAMPLED_CHOICES)}", param_hint="--decode-sampled")


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
    codec: Optional[Path] = typer.Option(None, help="PhraseVAE checkpoint (default: the shipped one)."),
    prior: Optional[Path] = typer.Option(None, help="LatentMamba checkpoint (default: the shipped one)."),
    critic: Optional[Path] = typer.Option(
        None, help="PhraseCritic checkpoint that steers --density and --key (default: the shipped one with the shipped codec)."
    ),
    candidates: int = typer.Option(8, min=1, help="Prior draws per slot the critic chooses from for --density or --key (1: no steering)."),
    scale_lock: float = typer.Option(
        0.0, min=0.0, help="Nats taken off the decoder's score of each note outside the piece's scale (0 = off; 50 = none but pitches clipped at the range's edges)."
    ),
    decode_temperature: float = typer.Option(
        1.0, min=0.0, help="Temperature at which the codec's decoder draws a bar's tokens (0 = greedy decoding)."
    ),
    decode_top_p: float = typer.Option(0.8, min=0.01, max=1.0, help="Draw from the most likely tokens up to this probability (1 = all)."),
    decode_sampled: str = typer.Option(
        "scale-pitches", help="Which tokens the decoder draws: pitches (the rhythm stays greedy), scale-pitches (pitches, "
        "in the scale only: a note outside it is written only where greedy decoding writes it) or all."
    ),
    chunk_bars: int = typer.Option(8, help="Bars between writes of the MIDI file."),
) -> None:
    """Write new music: unconditional, controlled, continued, or endless."""
    import torch

    from musemorphic.generation.generate import MusicGenerator, Request

    font = _soundfont_for(render, soundfont)  # before generating: a missing soundfont fails fast
    _check_decode_sampled(decode_sampled)
    torch.set_num_threads(1)
    generator = MusicGenerator.load(
        codec or _shipped_model("phrase_vae"),
        prior or _shipped_model("latent_mamba"),
        critic or _shipped_critic(codec),
        candidates=candidates,
        scale_lock=scale_lock,
        decode_temperature=decode_temperature,
        decode_top_p=decode_top_p,
        decode_sampled=decode_sampled,
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


@eval_app.command("phrase-vae")
def eval_phrase_vae(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint folder (default: the shipped model)."),
    data: Path = typer.Option(..., help="A folder made by `musemorphic prepare`."),
    split: str = typer.Option("test", help="train, valid or test."),
    max_bars: Optional[int] = typer.Option(None, help="Evaluate a seeded sample of this many bars."),
    prior_samples: int = typer.Option(512, help="Bars decoded from z ~ N(0, I) for the validity figure."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
) -> None:
    """Reconstruction, latent and prior figures of a PhraseVAE on held-out songs."""
    import json

    import torch

    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.evaluation.phrase_vae import evaluate_phrase_vae
    from musemorphic.training.phrase_vae import load_phrase_vae

    torch.set_num_threads(1)
    model, tokenizer = load_phrase_vae(checkpoint or _shipped_model("phrase_vae"))
    dataset = PhraseDataset(data, split=split)
    if dataset.tokenizer.to_json() != tokenizer.to_json():
        console.print("[yellow]note:[/] the dataset's BPE differs from the model's; bars are re-encoded with the model's")
        dataset.tokenizer = tokenizer
    with _progress_bar("evaluating") as bar:
        job = bar.add_task("evaluating", total=None, rate="")
        report = evaluate_phrase_vae(
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
    codec: Optional[Path] = typer.Option(None, help="PhraseVAE checkpoint (overrides --model's)."),
    prior: Optional[Path] = typer.Option(None, help="LatentMamba checkpoint (overrides --model's)."),
    critic: Optional[Path] = typer.Option(None, help="PhraseCritic checkpoint (overrides --model's phrase_critic/, if any)."),
    out: Path = typer.Option(Path("runs/eval_generate"), "-o", "--out", help="Report folder: report.md, report.json, metrics.png, pieces/."),
    pieces: int = typer.Option(48, help="Pieces to generate."),
    bars: int = typer.Option(16, help="Bars per piece."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature of the prior (default: the one the model records)."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance weight for the controls in the control table."),
    scale_lock: float = typer.Option(0.0, min=0.0, help="The generator's scale lock (see `generate --help`)."),
    decode_temperature: float = typer.Option(1.0, min=0.0, help="The codec's sampling temperature (see `generate --help`)."),
    decode_top_p: float = typer.Option(0.8, min=0.01, max=1.0, help="The nucleus of sampled decoding (see `generate --help`)."),
    decode_sampled: str = typer.Option("scale-pitches", help="The tokens sampled decoding draws: pitches, scale-pitches or all (see `generate --help`)."),
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
    _check_decode_sampled(decode_sampled)
    torch.set_num_threads(1)
    if critic is None and codec is None and model is None:
        critic = _shipped_critic(None)
    elif critic is None and codec is None and (model / "phrase_critic").is_dir():
        critic = model / "phrase_critic"
    codec = codec or (model / "phrase_vae" if model else _shipped_model("phrase_vae"))
    prior = prior or (model / "latent_mamba" if model else _shipped_model("latent_mamba"))
    generator = MusicGenerator.load(
        codec, prior, critic, scale_lock=scale_lock, decode_temperature=decode_temperature, decode_top_p=decode_top_p,
        decode_sampled=decode_sampled,
    )
    config = GenerationEvalConfig(pieces=pieces, bars=bars, temperature=temperature, guidance=guidance, train_songs=train_songs,
                                  control_seeds=control_seeds, seed=seed, reference=reference)
    with _progress_bar("evaluating") as bar:
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
    with _progress_bar("training") as bar:
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
    checkpoint = checkpoint or _shipped_model("phrase_vae")
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


@app.command()
def transpose(
    midi: Path = typer.Argument(..., help="A MIDI file."),
    semitones: int = typer.Option(..., "-k", "--semitones", help="Semitones to move by (negative = down)."),
    out: Path = typer.Option(..., "-o", "--out", help="MIDI file to write."),
    latent: bool = typer.Option(False, "--latent", help="Move through the codec's latent space: decode z + k * d_pitch."),
    codec: Optional[Path] = typer.Option(None, help="PhraseVAE checkpoint for --latent (default: the shipped one)."),
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
        from musemorphic.training.phrase_vae import load_phrase_vae

        torch.set_num_threads(1)
        model, tokenizer = load_phrase_vae(codec or _shipped_model("phrase_vae"))
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


def _shipped_critic(codec: Optional[Path]) -> Optional[Path]:
    """The shipped PhraseCritic when the codec is the shipped one (a critic learns one codec)."""
    return _shipped_model("phrase_critic") if codec is None else None


def _model_path(path: Path, name: str) -> Path:
    """A checkpoint folder as given, or the shipped `name` model for the word 'shipped'."""
    return _shipped_model(name) if str(path) == "shipped" else path


def _shipped_model(name: str) -> Path:
    from importlib import resources

    path = Path(str(resources.files("musemorphic") / "pretrained" / name))
    if not path.is_dir():
        raise typer.BadParameter(f"no shipped {name} model in this installation ({path}); pass a CHECKPOINT folder")
    return path


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
        _run_prepare([corpus], data_dir, PrepareConfig(workers=1))
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


if __name__ == "__main__":
    app()
