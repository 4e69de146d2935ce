"""The command line: the README's main job and the data commands."""

from __future__ import annotations

import json

import symusic
import typer
from typer.testing import CliRunner

import midi_factory
from musemorphic.cli import app
from musemorphic.data.controls import scale_pitch_classes
from musemorphic.models.codec_identity import codec_record

runner = CliRunner()


def test_demo_writes_a_transposed_song(tmp_path):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "demo"), "--transpose", "3"])
    assert result.exit_code == 0, result.output
    written = list((tmp_path / "demo").glob("*_transposed+3.mid"))
    assert len(written) == 1
    assert symusic.Score(str(written[0])).note_num() > 100


def test_prepare_then_retrain_the_tokenizer(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(3):
        (corpus / f"s{seed}.mid").write_bytes(midi_factory.simple_song(n_bars=16, seed=seed))
    (corpus / "broken.mid").write_bytes(midi_factory.truncated())
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", str(corpus), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "3 songs" in result.output and "1 files skipped" in result.output
    result = runner.invoke(app, ["tokenizer", "train", str(out), "--vocab-size", "520"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "tokenizer.json").read_text())  # valid JSON, rewritten
    assert "BPE vocabulary 520" in result.output


def test_fine_tune_the_shipped_prior_on_a_corpus_of_ones_own(tmp_path):
    """The README's recipe: prepare with the shipped codec's tokenizer, go on training the shipped prior, generate."""
    from musemorphic.cli.common import shipped_model
    from musemorphic.data.tokenizer import PhraseTokenizer
    from musemorphic.training.phrase_vae import load_phrase_vae

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(3):
        (corpus / f"s{seed}.mid").write_bytes(midi_factory.simple_song(n_bars=8, seed=seed))
    shipped_tokenizer = load_phrase_vae(shipped_model("phrase_vae"))[1]
    result = runner.invoke(app, ["prepare", str(corpus), "-o", str(tmp_path / "mine"), "--workers", "1", "--tokenizer", "shipped"])
    assert result.exit_code == 0, result.output
    assert PhraseTokenizer.load(tmp_path / "mine" / "tokenizer.json").to_json() == shipped_tokenizer.to_json()
    tune = ["train", "latent-mamba", "--data", str(tmp_path / "mine"), "--codec", "shipped", "--init", "shipped", "--steps", "2",
            "--batch-size", "2", "--window", "12", "-o", str(tmp_path / "tuned")]
    result = runner.invoke(app, tune)
    assert result.exit_code == 0, result.output
    tuned = json.loads((tmp_path / "tuned" / "checkpoint" / "config.json").read_text())
    shipped = json.loads((shipped_model("latent_mamba") / "config.json").read_text())
    assert tuned["model"] == shipped["model"] and tuned["step"] == 2
    song = runner.invoke(app, ["generate", "--prior", str(tmp_path / "tuned" / "checkpoint"), "--bars", "2", "-o", str(tmp_path / "song.mid")])
    assert song.exit_code == 0, song.output
    assert symusic.Score(str(tmp_path / "song.mid")).note_num() > 0
    decoder = runner.invoke(app, ["train", "phrase-vae", "--data", str(tmp_path / "mine"), "--init", "shipped", "--freeze-encoder",
                                  "--steps", "1", "--batch-size", "4", "-o", str(tmp_path / "decoder")])
    assert decoder.exit_code == 0, decoder.output  # the decoder learns the corpus; the codes, and the prior, stay valid
    song = runner.invoke(app, ["generate", "--codec", str(tmp_path / "decoder" / "checkpoint"), "--prior", str(tmp_path / "tuned" / "checkpoint"),
                               "--bars", "2", "-o", str(tmp_path / "song2.mid")])
    assert song.exit_code == 0, song.output
    result = runner.invoke(app, ["prepare", str(corpus), "-o", str(tmp_path / "own"), "--workers", "1"])  # its own BPE
    assert result.exit_code == 0, result.output
    mismatch = runner.invoke(app, tune[:3] + [str(tmp_path / "own")] + tune[4:-2] + ["-o", str(tmp_path / "bad")])
    assert mismatch.exit_code == 2 and "--tokenizer" in mismatch.output and not (tmp_path / "bad").exists()
    nowhere = runner.invoke(app, ["prepare", str(corpus), "-o", str(tmp_path / "x"), "--tokenizer", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 2 and "neither a tokenizer.json nor a checkpoint folder" in " ".join(nowhere.output.replace("│", "").split())


def test_prepare_names_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["prepare", str(tmp_path / "nowhere"), "-o", str(tmp_path / "ds")])
    assert result.exit_code != 0
    assert "nowhere" in str(result.exception) or "nowhere" in result.output


def _tiny_checkpoints(dataset, tmp_path):
    """Untrained tiny codec and prior saved as the training recipes save them."""
    import torch

    from musemorphic.training.checkpoint import save_checkpoint
    from musemorphic.training.latent_mamba import build_latent_mamba
    from musemorphic.training.phrase_vae import build_phrase_vae

    torch.manual_seed(0)
    codec = build_phrase_vae(dataset.tokenizer, "tiny", d_latent=8)
    prior = build_latent_mamba(dataset, "tiny", d_latent=8)
    save_checkpoint(tmp_path / "codec", codec, {"kind": "phrase_vae", "model": codec.config.to_dict(), "tokenizer": dataset.tokenizer.to_json()})
    record = {**codec_record(codec), "default_programs": [0, 0]}
    save_checkpoint(tmp_path / "prior", prior, {"kind": "latent_mamba", "model": prior.config.to_dict(), "codec": record})
    return tmp_path / "codec", tmp_path / "prior"


def test_generate_checks_the_codes_a_prior_and_the_decodings_a_critic_learned(fixture_dataset, tmp_path):
    """A codec of the same shape but other encoder weights writes other codes than the prior
    learned; one whose decoder alone was trained on keeps them, but not what a critic learned."""
    import torch

    from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig
    from musemorphic.training.checkpoint import save_checkpoint
    from musemorphic.training.phrase_vae import load_phrase_vae

    codec_dir, prior = _tiny_checkpoints(fixture_dataset, tmp_path)
    codec, _ = load_phrase_vae(codec_dir)
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16))
    critic_config = {"kind": "phrase_critic", "model": critic.config.to_dict(), "codec": codec_record(codec, decodings=True)}
    save_checkpoint(tmp_path / "critic", critic, critic_config)
    config = {"kind": "phrase_vae", "model": codec.config.to_dict(), "tokenizer": fixture_dataset.tokenizer.to_json()}
    with torch.no_grad():
        codec.head.weight.add_(1.0)  # the decoder's
    save_checkpoint(tmp_path / "tuned_decoder", codec, config)
    with torch.no_grad():
        codec.bottleneck.to_gaussian.weight.add_(0.01)  # the encoder's
    save_checkpoint(tmp_path / "retrained", codec, config)
    args = ["generate", "--prior", str(prior), "--bars", "2", "--density", "high"]
    result = runner.invoke(app, args + ["--codec", str(codec_dir), "--critic", str(tmp_path / "critic"), "-o", str(tmp_path / "a.mid")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, args + ["--codec", str(tmp_path / "tuned_decoder"), "-o", str(tmp_path / "b.mid")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, args + ["--codec", str(tmp_path / "tuned_decoder"), "--critic", str(tmp_path / "critic"), "-o", str(tmp_path / "c.mid")])
    assert result.exit_code != 0 and "decodings of another codec" in str(result.exception)
    result = runner.invoke(app, args + ["--codec", str(tmp_path / "retrained"), "-o", str(tmp_path / "d.mid")])
    assert result.exit_code != 0 and "latents of another codec" in str(result.exception)


def test_train_phrase_vae_resumes_and_fine_tunes_as_the_run_was_trained(fixture_dataset_dir, tmp_path):
    """A run saved before `beta_per` existed (so weighed per token), with dropout, goes on that
    way whatever the flags say; so does a fine-tuning of it."""
    train = ["train", "phrase-vae", "--data", str(fixture_dataset_dir), "--codec", "autoregressive", "--preset", "tiny", "--batch-size", "8",
             "--beta-per", "phrase"]
    result = runner.invoke(app, train + ["--steps", "4", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config_path = tmp_path / "run" / "checkpoint" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["curriculum"]["beta_per"] == "phrase" and config["model"]["dropout"] == 0.0
    del config["curriculum"]["beta_per"]  # as saved before the option existed
    config["model"]["dropout"] = 0.1
    config_path.write_text(json.dumps(config))
    result = runner.invoke(app, train + ["--steps", "6", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    resumed = json.loads(config_path.read_text())
    assert resumed["step"] == 6 and resumed["curriculum"]["beta_per"] == "token" and resumed["model"]["dropout"] == 0.1
    result = runner.invoke(app, train + ["--steps", "2", "--init", str(tmp_path / "run" / "checkpoint"), "-o", str(tmp_path / "tuned")])
    assert result.exit_code == 0, result.output
    tuned = json.loads((tmp_path / "tuned" / "checkpoint" / "config.json").read_text())
    assert tuned["curriculum"]["beta_per"] == "token" and tuned["curriculum"]["infill_fraction"] == 0.0
    defaults = train[:-2] + ["--steps", "1", "--dropout", "0.1", "-o", str(tmp_path / "old")]  # the shipped recipe
    assert runner.invoke(app, defaults).exit_code == 0
    old = json.loads((tmp_path / "old" / "checkpoint" / "config.json").read_text())
    assert old["curriculum"]["beta_per"] == "token" and old["model"]["dropout"] == 0.1
    result = runner.invoke(app, train[:-2] + ["--steps", "1", "--beta-per", "bar", "-o", str(tmp_path / "bad")])
    assert result.exit_code != 0 and "phrase or token" in result.output


def test_train_phrase_vae_retrains_only_the_decoder_and_resumes_that_way(fixture_dataset_dir, tmp_path):
    from safetensors.torch import load_file

    train = ["train", "phrase-vae", "--data", str(fixture_dataset_dir), "--codec", "autoregressive", "--preset", "tiny", "--batch-size", "8"]
    assert runner.invoke(app, train + ["--steps", "2", "-o", str(tmp_path / "base")]).exit_code == 0
    init = tmp_path / "base" / "checkpoint"
    bad = runner.invoke(app, train + ["--steps", "1", "--freeze-encoder", "-o", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--init" in bad.output
    tune = train + ["--init", str(init), "--freeze-encoder", "--decoder-noise", "0.8", "-o", str(tmp_path / "tuned")]
    assert runner.invoke(app, tune + ["--steps", "2"]).exit_code == 0
    resumed = runner.invoke(app, train + ["--steps", "4", "-o", str(tmp_path / "tuned")])  # no flags: the saved curriculum
    assert resumed.exit_code == 0, resumed.output
    config = json.loads((tmp_path / "tuned" / "checkpoint" / "config.json").read_text())
    assert config["step"] == 4 and config["curriculum"]["freeze_encoder"] and config["curriculum"]["decoder_noise"] == 0.8
    old, new = load_file(init / "model.safetensors"), load_file(tmp_path / "tuned" / "checkpoint" / "model.safetensors")
    same = {k: old[k].nan_to_num().equal(new[k].nan_to_num()) for k in old}  # the FME feature table holds NaNs
    assert all(same[k] for k in old if k.startswith(("encoder", "bottleneck")))
    assert not all(same[k] for k in old if k.startswith(("decoder", "head")))


def test_generate_writes_midi_and_a_piano_roll(fixture_dataset, tmp_path):
    codec, prior = _tiny_checkpoints(fixture_dataset, tmp_path)
    out = tmp_path / "song.mid"
    args = ["generate", "--codec", str(codec), "--prior", str(prior), "--bars", "4", "-o", str(out), "--plot"]
    result = runner.invoke(app, args + ["--key", "D minor", "--tempo", "96"])
    assert result.exit_code == 0, result.output
    score = symusic.Score(str(out))
    assert round(score.tempos[0].qpm) == 96
    assert out.with_suffix(".png").stat().st_size > 1000
    bad = runner.invoke(app, args + ["--key", "H major"])
    assert bad.exit_code != 0 and "H major" in bad.output


def test_train_latent_mamba_with_its_experimental_options_then_generate(fixture_dataset, fixture_dataset_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(fixture_dataset_dir, data)  # the latents cache is written next to the dataset
    codec, _ = _tiny_checkpoints(fixture_dataset, tmp_path)
    args = ["train", "latent-mamba", "--data", str(data), "--codec", str(codec), "--preset", "tiny", "--steps", "2",
            "--batch-size", "2", "--window", "12"]
    bad = runner.invoke(app, args + ["--track-memory", "1.5", "-o", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--track-memory" in bad.output
    result = runner.invoke(app, args + ["--track-memory", "0.5", "--min-log-scale", "-5", "--input-noise", "0.3", "--silence-head", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())
    assert config["model"]["track_memory_decay"] == 0.5 and config["model"]["min_log_scale"] == -5.0
    assert config["model"]["input_noise"] == 0.3 and config["model"]["silence_head"] is True
    exported = runner.invoke(app, ["export", str(tmp_path / "run" / "checkpoint"), str(tmp_path / "shipped"), "--temperature", "1.1"])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "shipped" / "config.json").read_text())["model"]["temperature"] == 1.1  # the default it samples at
    not_a_prior = runner.invoke(app, ["export", str(codec), str(tmp_path / "codec_export"), "--temperature", "1.1"])
    assert not_a_prior.exit_code == 2 and "LatentMamba" in "".join(not_a_prior.output.replace("│", "").split())
    assert not (tmp_path / "codec_export").exists()
    out = tmp_path / "song.mid"
    song = runner.invoke(app, ["generate", "--codec", str(codec), "--prior", str(tmp_path / "run" / "checkpoint"), "--bars", "3", "-o", str(out)])
    assert song.exit_code == 0, song.output
    assert symusic.Score(str(out)).ticks_per_quarter > 0  # a valid MIDI file (an untrained prior may write silence)
    tuned = runner.invoke(app, args + ["--init", str(tmp_path / "shipped"), "--input-noise", "0.2", "-o", str(tmp_path / "tuned")])
    assert tuned.exit_code == 0, tuned.output
    tuned_config = json.loads((tmp_path / "tuned" / "checkpoint" / "config.json").read_text())["model"]
    assert tuned_config == {**config["model"], "temperature": 1.1, "input_noise": 0.2}  # the start's architecture
    from musemorphic.training.checkpoint import save_checkpoint
    from musemorphic.training.phrase_vae import build_phrase_vae

    other = build_phrase_vae(fixture_dataset.tokenizer, "tiny", d_latent=4)
    save_checkpoint(tmp_path / "other", other, {"kind": "phrase_vae", "model": other.config.to_dict(), "tokenizer": fixture_dataset.tokenizer.to_json()})
    mismatch = runner.invoke(app, ["train", "latent-mamba", "--data", str(data), "--codec", str(tmp_path / "other"), "--steps", "1",
                                   "--init", str(tmp_path / "shipped"), "-o", str(tmp_path / "mismatch")])
    assert mismatch.exit_code == 2 and "another codec" in mismatch.output


def test_generate_steers_with_a_critic_of_its_codec_only(fixture_dataset, tmp_path):
    from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig
    from musemorphic.training.checkpoint import save_checkpoint
    from musemorphic.training.phrase_vae import load_phrase_vae

    codec, prior = _tiny_checkpoints(fixture_dataset, tmp_path)
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16))
    codec_config = load_phrase_vae(codec)[0].config.to_dict()
    save_checkpoint(tmp_path / "critic", critic, {"kind": "phrase_critic", "model": critic.config.to_dict(), "codec": {"model": codec_config}})  # no fingerprint: saved before they were kept
    other = {**codec_config, "d_model": codec_config["d_model"] * 2}
    save_checkpoint(tmp_path / "other", critic, {"kind": "phrase_critic", "model": critic.config.to_dict(), "codec": {"model": other}})
    args = ["generate", "--codec", str(codec), "--prior", str(prior), "--bars", "3", "--density", "high", "--key", "Dm"]
    result = runner.invoke(app, args + ["--critic", str(tmp_path / "critic"), "-o", str(tmp_path / "a.mid")])
    assert result.exit_code == 0, result.output
    assert symusic.Score(str(tmp_path / "a.mid")).ticks_per_quarter == 480
    result = runner.invoke(app, args + ["--critic", str(tmp_path / "other"), "-o", str(tmp_path / "b.mid")])
    assert result.exit_code != 0 and "another codec" in str(result.exception)
    result = runner.invoke(app, args + ["--critic", str(tmp_path / "critic"), "--candidates", "0", "-o", str(tmp_path / "c.mid")])
    assert result.exit_code != 0 and "candidates" in result.output


def test_generate_names_a_missing_model(tmp_path):
    result = runner.invoke(app, ["generate", "--codec", str(tmp_path / "none"), "--prior", str(tmp_path / "none"), "-o", str(tmp_path / "x.mid")])
    assert result.exit_code != 0
    assert "none" in str(result.exception)


def test_shipped_models_generate_and_evaluate_offline(fixture_dataset_dir, tmp_path):
    out = tmp_path / "song.mid"
    result = runner.invoke(app, ["generate", "-o", str(out), "--bars", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert symusic.Score(str(out)).note_num() > 0
    locked = tmp_path / "locked.mid"
    result = runner.invoke(app, ["generate", "-o", str(locked), "--bars", "4", "--key", "Eb major", "--scale-lock", "50"])
    assert result.exit_code == 0, result.output
    pitches = [n.pitch for t in symusic.Score(str(locked)).tracks if not t.is_drum for n in t.notes]
    assert pitches and all(p % 12 in scale_pitch_classes(3) for p in pitches)
    bad = runner.invoke(app, ["generate", "-o", str(locked), "--scale-lock", "-1"])
    assert bad.exit_code != 0 and "--scale-lock" in bad.output
    sampled = tmp_path / "sampled.mid"
    result = runner.invoke(app, ["generate", "-o", str(sampled), "--bars", "4", "--decode-temperature", "1", "--decode-top-p", "0.9"])
    assert result.exit_code == 0, result.output
    assert symusic.Score(str(sampled)).note_num() > 0
    bad = runner.invoke(app, ["generate", "-o", str(sampled), "--decode-top-p", "0"])
    assert bad.exit_code != 0 and "--decode-top-p" in bad.output
    result = runner.invoke(app, ["generate", "-o", str(sampled), "--bars", "4", "--decode-temperature", "1", "--decode-sampled", "pitches"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, ["generate", "-o", str(sampled), "--decode-sampled", "rhythm"])
    assert bad.exit_code != 0 and "--decode-sampled" in bad.output
    result = runner.invoke(app, ["eval", "phrase-vae", "--data", str(fixture_dataset_dir), "--split", "train",
                                 "--max-bars", "16", "--prior-samples", "4", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["bars"] + figures["empty_bars"] == 16 and 0 <= figures["note_f1"] <= 1
    assert figures["prior_samples"] == 4 and all(isinstance(n, int) for n in figures["prior_faults"].values())
    result = runner.invoke(app, ["eval", "phrase-vae", "--data", str(fixture_dataset_dir), "--split", "train",
                                 "--max-bars", "16", "--prior-samples", "4"])
    assert result.exit_code == 0, result.output
    assert "token_accuracy" in result.output and "prior_faults" in result.output


def test_the_decoding_options_default_to_the_generators_defaults():
    from musemorphic.generation import generate as gen

    expected = {"scale_lock": gen.SCALE_LOCK, "scale_lock_memory": gen.SCALE_LOCK_MEMORY,
                "scale_lock_welcome": gen.SCALE_LOCK_WELCOME, "decode_temperature": gen.DECODE_TEMPERATURE,
                "decode_top_p": gen.DECODE_TOP_P, "decode_sampled": gen.DECODE_SAMPLED, "groove_draws": gen.GROOVE_DRAWS,
                "groove_distance": gen.GROOVE_DISTANCE}
    root = typer.main.get_command(app)
    for command in (root.commands["generate"], root.commands["eval"].commands["generate"]):
        defaults = {p.name: p.default for p in command.params if p.name in expected}
        assert defaults == expected, command.name


def test_under_torchrun_only_rank_zero_speaks(monkeypatch):
    from musemorphic.cli.common import _another_rank

    for world, rank, quiet in (("2", "1", True), ("2", "0", False), ("1", "3", False), ("2", "", False)):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("RANK", rank)
        assert _another_rank() is quiet, (world, rank)
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert _another_rank() is False


def test_train_and_eval_a_grid_codec(fixture_dataset_dir, tmp_path):
    train = ["train", "phrase-vae", "--data", str(fixture_dataset_dir), "--preset", "tiny", "--batch-size", "8", "--steps", "2",
             "-o", str(tmp_path / "grid")]
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "grid" / "checkpoint" / "config.json").read_text())["codec"] == "grid"
    refused = runner.invoke(app, [*train[:-2], "--factorize", "1.0", "-o", str(tmp_path / "refused")])
    assert refused.exit_code == 2 and "only for --codec autoregressive" in refused.output
    noisy = runner.invoke(app, [*train[:-4], "--steps", "1", "--init", str(tmp_path / "grid" / "checkpoint"), "--freeze-encoder",
                                "--decoder-noise", "0.5", "-o", str(tmp_path / "noisy")])
    assert noisy.exit_code == 0, noisy.output
    saved = json.loads((tmp_path / "noisy" / "checkpoint" / "config.json").read_text())
    assert saved["training"]["freeze_encoder"] and saved["training"]["decoder_noise"] == 0.5
    conflict = runner.invoke(app, [*train[:-4], "--steps", "1", "--codec", "autoregressive", "--init", str(tmp_path / "grid" / "checkpoint"),
                                   "-o", str(tmp_path / "conflict")])
    assert conflict.exit_code == 2 and "is a grid codec" in conflict.output
    result = runner.invoke(app, ["eval", "phrase-vae", str(tmp_path / "grid" / "checkpoint"), "--data", str(fixture_dataset_dir),
                                 "--split", "train", "--max-bars", "16", "--prior-samples", "4", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    for key in ("note_f1", "exact_bar_rate", "duration_match", "velocity_match", "mean_kl", "prior_grammatical"):
        assert isinstance(figures[key], float), key
    assert figures["token_accuracy"] is None and figures["prior_grammatical"] == 1.0
