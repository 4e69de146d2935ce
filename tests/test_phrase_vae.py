"""PhraseVAE: presets, curriculum, the overfitting check, and the codec metrics."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from musemorphic.data.remi_grammar import BarNote, GrammarError, grammatical_prefix, note_f1, parse_bar, precision_recall_f1
from musemorphic.data.phrase_batches import PhraseBatcher, codec_ids_to_base, salvaged_bar
from musemorphic.evaluation.phrase_vae import evaluate_phrase_vae, phrase_fault, prior_faults
from musemorphic.models.phrase_vae import inverse_cdf_sample, kl_per_dim, nucleus, phrase_vae_config
from musemorphic.training.loop import TrainConfig, train
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae, span_mask


def test_presets_fit_their_budgets(fixture_dataset):
    sizes = {}
    for preset in ("tiny", "small", "full"):
        model = build_phrase_vae(fixture_dataset.tokenizer, preset)
        sizes[preset] = sum(p.numel() for p in model.parameters())
    assert sizes["tiny"] < 1e6 < sizes["small"] <= 5e6 < sizes["full"]
    with pytest.raises(ValueError, match="unknown PhraseVAE preset"):
        phrase_vae_config("huge", vocab_size=10)


def test_span_mask_spares_program_and_padding():
    ids = torch.tensor([[7, 10, 11, 12, 13, 14, 15, 16, 17, 2], [7, 10, 11, 12, 2, 0, 0, 0, 0, 0]])
    masked = span_mask(ids, mask_id=3, pad_id=0, ratio=0.3, mean_span=2, rng=np.random.default_rng(0))
    assert (masked[:, 0] == 7).all()
    assert (masked[1, 5:] == 0).all()
    assert (masked == 3).sum(dim=1).tolist() == [3, 1]  # round(0.3 * (length - 1)) per row


def test_curriculum_walks_through_the_three_stages(fixture_dataset):
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny")
    task = PhraseVAETask(model, PhraseBatcher(fixture_dataset, 160), total_steps=100, batch_size=2, seed=0,
                         curriculum=CurriculumConfig(infill_fraction=0.1, ae_fraction=0.3, beta=0.01, beta_warmup=0.5))
    assert [task.stage(s) for s in (0, 9, 10, 39, 40, 99)] == ["infill", "infill", "ae", "ae", "vae", "vae"]
    assert task.beta(39) == 0 and 0 < task.beta(40) < task.beta(55) < 0.01
    assert task.beta(99) == pytest.approx(0.01)
    assert "encoder_ids" in task.batch(0, 0) and "encoder_ids" not in task.batch(50, 0)


def test_beta_weighs_the_kl_against_a_whole_phrase(fixture_dataset):
    """The seed's loss sums -log p(x|z) over a phrase: per token, the KL term shrinks by the
    mean phrase length. Old curricula (saved without `beta_per`) keep the per-token weight."""
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny").eval()
    terms = {}
    for beta_per in ("phrase", "token"):
        curriculum = CurriculumConfig(infill_fraction=0.0, ae_fraction=0.0, beta=0.5, beta_warmup=0.0, beta_per=beta_per)
        task = PhraseVAETask(model, PhraseBatcher(fixture_dataset, 160), total_steps=10, batch_size=8, seed=0, curriculum=curriculum)
        batch = task.batch(5, 0)
        torch.manual_seed(0)  # the same posterior sample both times
        with torch.no_grad():
            loss, metrics = task.loss(model, batch, 5)
        terms[beta_per] = float(loss) - metrics["reconstruction"]
    ids = batch["ids"]
    mean_length = float((ids != model.config.pad_id).sum()) / len(ids)
    assert mean_length > 2 and terms["token"] > 0
    assert terms["phrase"] == pytest.approx(terms["token"] / mean_length, rel=1e-4)
    assert CurriculumConfig.from_dict({"beta": 0.01}).beta_per == "token"
    assert CurriculumConfig.from_dict(CurriculumConfig(beta_per="phrase").to_dict()).beta_per == "phrase"
    with pytest.raises(ValueError, match="beta_per"):
        CurriculumConfig(beta_per="bar")


def test_a_frozen_encoder_keeps_every_code_while_the_decoder_learns_on_noisy_latents(fixture_dataset, tmp_path):
    """--freeze-encoder: training steps move the decoder only; the encoder side stays in eval
    mode (no power iterations, no dropout) even when the loop calls model.train()."""
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny", dropout=0.2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fingerprint = model.code_fingerprint()
    curriculum = CurriculumConfig.fine_tune(decoder_noise=1.0, freeze_encoder=True)
    task = PhraseVAETask(model, PhraseBatcher(fixture_dataset, 160), total_steps=3, batch_size=8, seed=0, curriculum=curriculum)
    train(task, TrainConfig(out_dir=str(tmp_path / "run"), steps=3, batch_size=8, lr=1e-2, warmup_steps=0, log_every=1))
    encoder_keys = {k for k in before if k.split(".")[0] in ("encoder_embedding", "encoder", "bottleneck")}
    assert encoder_keys and any(k.endswith(".u") for k in encoder_keys)  # the power-iteration buffers too
    after = {k: v.nan_to_num() for k, v in model.state_dict().items()}  # the FME feature table holds NaNs
    assert all(torch.equal(after[k], before[k].nan_to_num()) for k in encoder_keys)
    assert not all(torch.equal(after[k], before[k].nan_to_num()) for k in before.keys() - encoder_keys)
    assert model.code_fingerprint() == fingerprint  # a prior trained on its codes still applies
    model.train()
    assert model.decoder.training and not model.encoder.training and not model.bottleneck.training


def test_the_code_fingerprint_follows_the_encoder_at_fp16_precision(fixture_dataset):
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny")
    fingerprint = model.code_fingerprint()
    model.half()  # as `export` ships it
    assert model.code_fingerprint() == fingerprint
    model.float()
    with torch.no_grad():
        model.encoder_embedding.tokens.weight[5, 0] += 0.5
    assert model.code_fingerprint() != fingerprint


def test_decoder_noise_moves_the_decoders_latent_only(fixture_dataset):
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny").eval()
    ids = PhraseVAETask(model, PhraseBatcher(fixture_dataset, 160), total_steps=1, batch_size=8, seed=0).batch(0, 0)["ids"]
    with torch.no_grad():
        clean, mu, logvar = model(ids)
        noisy, noisy_mu, noisy_logvar = model(ids, decoder_noise=1.0)
        zero, _, _ = model(ids, decoder_noise=0.0)
    assert torch.equal(mu, noisy_mu) and torch.equal(logvar, noisy_logvar)
    assert torch.equal(clean, zero) and not torch.allclose(clean, noisy)
    with pytest.raises(ValueError, match="decoder_noise"):
        CurriculumConfig(decoder_noise=-0.1)
    assert CurriculumConfig.from_dict(CurriculumConfig(decoder_noise=0.5, freeze_encoder=True).to_dict()).freeze_encoder


def test_kl_per_dim_is_zero_at_the_prior():
    assert torch.allclose(kl_per_dim(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(3))
    assert kl_per_dim(torch.ones(4, 3), torch.zeros(4, 3)).tolist() == [0.5, 0.5, 0.5]


class FixedBatch:
    """32 fixed bars, every step: the overfitting check."""

    def __init__(self, model, ids):
        self.model, self.ids = model, ids

    def batch(self, step, rank):
        return self.ids

    def loss(self, model, ids, step):
        logits, _, _ = model(ids)
        return self.model.reconstruction_loss(logits, ids), {}

    def checkpoint_config(self):
        return {"kind": "test"}


def test_tiny_preset_overfits_32_bars_exactly(fixture_dataset, tmp_path):
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny", label_smoothing=0.0)
    batcher = PhraseBatcher(fixture_dataset, model.config.max_len, nonempty_only=True)
    positions = batcher.indices[np.random.default_rng(0).choice(len(batcher.indices), 32, replace=False)]
    ids = batcher.encode(positions)
    config = TrainConfig(out_dir=str(tmp_path), steps=400, lr=3e-3, warmup_steps=20, checkpoint_every=400, zclip=False)
    train(FixedBatch(model, ids), config)
    model.eval()
    with torch.no_grad():
        _, mu, _ = model(ids)
        decoded = model.generate(mu)
    tok = fixture_dataset.tokenizer
    targets = [row[: row.index(tok.eos_id)] for row in ids.tolist()]
    exact = sum(codec_ids_to_base(tok, d) == codec_ids_to_base(tok, t) for d, t in zip(decoded, targets))
    assert exact == 32
    # rows leave the batch as they end, and the phrases are those of decoding each latent alone
    assert len({len(t) for t in targets}) > 5
    batch_sizes = []
    decode_logits = model.decode_logits
    model.decode_logits = lambda z, *args: batch_sizes.append(len(z)) or decode_logits(z, *args)
    with torch.no_grad():
        assert model.generate(mu) == decoded
    del model.decode_logits
    assert batch_sizes[0] == 32 and batch_sizes[-1] < 32 and batch_sizes == sorted(batch_sizes, reverse=True)
    with torch.no_grad():
        assert decoded == [model.generate(mu[i : i + 1])[0] for i in range(len(mu))]


def test_inverse_cdf_sampling_picks_tokens_by_their_probability():
    logits = torch.tensor([float("-inf"), 0.0, float("-inf"), math.log(3.0)]).expand(5, 4)  # p = 0, 1/4, 0, 3/4
    u = torch.tensor([0.0, 0.2, 0.26, 0.5, 1 - 1e-12], dtype=torch.float64)
    assert inverse_cdf_sample(logits, u).tolist() == [1, 1, 3, 3, 3]  # never a token of probability 0
    grid = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    counts = torch.bincount(inverse_cdf_sample(logits[:1].expand(1000, 4), grid), minlength=4)
    assert counts.tolist() == [0, 250, 0, 750]


def test_the_nucleus_keeps_the_most_likely_tokens_up_to_top_p():
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    kept = lambda top_p: torch.isfinite(nucleus(logits, top_p))[0].tolist()
    assert kept(0.79) == [False, True, False, True]
    assert kept(0.81) == [True, True, False, True]
    assert kept(0.1) == [False, True, False, False]  # the most likely token always stays
    assert kept(1.0) == [True] * 4


def test_sampled_decoding_of_a_row_does_not_depend_on_its_batch(fixture_dataset):
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny").eval()
    z = torch.randn(6, model.config.d_latent)
    uniforms = torch.rand(6, model.config.max_len, dtype=torch.float64)
    with torch.no_grad():
        batch = model.generate(z, temperature=1.0, max_len=24, uniforms=uniforms)
        alone = [model.generate(z[i : i + 1], temperature=1.0, max_len=24, uniforms=uniforms[i : i + 1])[0] for i in range(6)]
        other = model.generate(z, temperature=1.0, max_len=24, uniforms=torch.rand(6, model.config.max_len, dtype=torch.float64))
        cold = model.generate(z, temperature=1e-4, max_len=24, uniforms=uniforms)
        narrow = model.generate(z, temperature=1.0, max_len=24, uniforms=uniforms, top_p=1e-6)
        greedy = model.generate(z, max_len=24)
        own_groups = model.generate(z, temperature=1.0, max_len=24, uniforms=uniforms, token_groups=torch.arange(model.config.vocab_size))
    assert batch == alone and batch != other
    assert own_groups == greedy  # every token alone in its group: nothing to draw among
    assert cold == greedy == narrow  # a vanishing temperature or nucleus is greedy decoding
    with pytest.raises(ValueError, match="uniforms"):
        model.generate(z, temperature=1.0, max_len=24, uniforms=uniforms[:, :10])


def test_a_bar_that_must_sound_completes_a_note_before_it_ends(fixture_dataset):
    from musemorphic.generation.phrase_codec import note_ends

    torch.manual_seed(0)
    tok = fixture_dataset.tokenizer
    model = build_phrase_vae(tok, "tiny").eval()
    notes = note_ends(tok)  # (V,)
    names = [tok.token_names(tok.bpe_decode([i])) for i in range(tok.vocab_size)]
    assert notes.tolist() == [any(n.startswith("Duration_") for n in ns) for ns in names] and notes.any()
    eager = torch.zeros(model.config.vocab_size)
    eager[model.config.eos_id] = 20.0  # a decoder that ends every bar at once
    z = torch.randn(4, model.config.d_latent)
    with torch.no_grad():
        assert model.generate(z, max_len=24, logit_bias=eager) == [[]] * 4
        for temperature in (0.0, 1.0):
            for row in model.generate(z, temperature, max_len=24, logit_bias=eager, note_ends=notes):
                first = next(i for i, t in enumerate(row) if notes[t])  # a note is completed ...
                assert len(row) == first + 1  # ... and the bar ends right after it, as soon as it may


def test_report_of_an_untrained_model_is_well_formed(fixture_dataset):
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny")
    report = evaluate_phrase_vae(model, fixture_dataset, max_bars=40, prior_samples=8)
    assert report.bars + report.empty_bars == 40
    assert report.mean_phrase_tokens >= 3  # Program, Bar, EOS at the least
    assert 0 <= report.token_accuracy < 0.5  # untrained: near chance
    assert 0 <= report.note_f1 <= 1 and 0 <= report.prior_grammatical <= 1
    assert set(report.to_dict()) >= {"token_accuracy", "exact_bar_rate", "note_f1", "mean_kl", "active_dims"}


def test_report_measures_how_the_codes_spread(fixture_dataset, monkeypatch):
    """Posterior std is read from logvar; the spread of the means scales with them."""
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny").eval()
    forward = model.forward

    def with_codes(scale):
        def fake(ids):
            logits, mu, logvar = forward(ids)
            return logits, scale * mu, torch.full_like(logvar, math.log(0.25))  # std 0.5
        monkeypatch.setattr(model, "forward", fake)
        return evaluate_phrase_vae(model, fixture_dataset, max_bars=40, prior_samples=0)

    plain, wide = with_codes(1.0), with_codes(3.0)
    assert plain.prior_grammatical is None and plain.prior_faults == {}
    assert plain.posterior_std_median == pytest.approx(0.5) and wide.posterior_std_median == pytest.approx(0.5)
    assert plain.mean_spread_median > 0
    assert wide.mean_spread_median == pytest.approx(3 * plain.mean_spread_median, rel=1e-5)


def test_real_phrases_are_valid_and_garbage_is_not(fixture_dataset):
    tok = fixture_dataset.tokenizer
    batcher = PhraseBatcher(fixture_dataset, 160, nonempty_only=True)
    rows = batcher.encode(batcher.indices[:20]).tolist()
    assert all(phrase_fault(tok, row[: row.index(tok.eos_id)]) is None for row in rows)
    assert phrase_fault(tok, []) == "no leading Program token"
    program = rows[0][0]
    ids = lambda *names: [program] + [tok.base_vocab[n] for n in names]  # noqa: E731 (base ids are valid BPE ids)
    assert phrase_fault(tok, [tok.base_vocab["Pitch_60"], tok.bar_id]) == "no leading Program token"
    assert phrase_fault(tok, ids("Bar_None", "Position_3")) == "Position_N holds neither a note nor a tempo"
    assert phrase_fault(tok, ids("Bar_None", "Position_17")) == "position N outside a N-position bar"


def test_prior_faults_count_why_decoded_bars_fail(fixture_dataset):
    """Each bar the codec decodes from the prior is judged; the grammatical ones are not counted."""
    tok = fixture_dataset.tokenizer
    batcher = PhraseBatcher(fixture_dataset, 160, nonempty_only=True)
    good = batcher.encode(batcher.indices[:1]).tolist()[0]
    good = good[: good.index(tok.eos_id)]
    outside = [good[0]] + [tok.base_vocab[n] for n in ("Bar_None", "Position_17", "Pitch_60", "Velocity_79", "Duration_1.0.4")]

    class Decodes:  # a codec stub whose decodings are known
        config = SimpleNamespace(d_latent=4)

        def parameters(self):
            return iter([torch.zeros(1)])

        def generate(self, z):
            return [good, [tok.bar_id], outside, good, outside][: len(z)]

    faults = prior_faults(Decodes(), tok, 5, seed=0)
    assert faults == {"no leading Program token": 1, "position N outside a N-position bar": 2}


def test_parse_bar_reads_notes_and_rejects_bad_grammar():
    bar = ["Bar_None", "TimeSig_3/4", "Position_0", "Tempo_120.0", "Pitch_60", "Velocity_79", "Duration_1.0.4",
           "Pitch_64", "Velocity_79", "Duration_0.2.4", "Position_8", "Pitch_67", "Velocity_63", "Duration_1.0.4"]
    ts, notes = parse_bar(bar)
    assert ts == (3, 4)
    assert notes == [BarNote(0, 60, 79, "1.0.4"), BarNote(0, 64, 79, "0.2.4"), BarNote(8, 67, 63, "1.0.4")]
    for broken, reason in ((bar[1:], "must start with Bar"), (bar[:-1], "cut short"),
                           (bar[:10] + ["Position_0"] + bar[11:], "out of order"),
                           (bar[:2] + ["Position_12"] + bar[3:], "outside a 12-position bar"),
                           (["Bar_None", "Position_3"], "neither a note nor a tempo")):
        with pytest.raises(GrammarError, match=reason):
            parse_bar(broken)


def test_a_broken_bar_keeps_its_notes_before_the_first_fault(tokenizer):
    head = ["Bar_None", "TimeSig_3/4", "Position_0", "Pitch_60", "Velocity_79", "Duration_1.0.4"]
    second = ["Position_4", "Pitch_64", "Velocity_79", "Duration_0.2.4"]
    assert grammatical_prefix(head + second) == 10  # a well-formed bar is kept whole
    assert grammatical_prefix(head + second + ["Position_12", "Pitch_67", "Velocity_63", "Duration_1.0.4"]) == 10  # past the end
    assert grammatical_prefix(head + second + ["Position_2", "Pitch_67"]) == 10  # out of order, and cut short
    assert grammatical_prefix(head + ["Position_4", "Pitch_64", "Velocity_79"]) == 6
    chord = ["Position_4", "Pitch_64", "Velocity_79", "Duration_0.2.4", "Pitch_67", "Velocity_79"]
    assert grammatical_prefix(head + chord) == 10  # the chord's complete note is kept, its cut-short one dropped
    assert grammatical_prefix(head + chord[:4] + ["Pitch_67", "Position_8"]) == 10
    assert grammatical_prefix(["Bar_None", "Position_1", "Velocity_79"]) == 1  # only the head: an empty bar
    assert grammatical_prefix(["Position_0", "Pitch_60"]) == 0
    assert grammatical_prefix(["Bar_None", "TimeSig_3/4", "Pitch_60", "Velocity_79"]) == 2  # a fault right after the head
    ids = [tokenizer.base_vocab[n] for n in head + second + ["Position_12", "Pitch_67", "Velocity_63", "Duration_1.0.4"]]
    program = tokenizer.program_ids[0]
    assert salvaged_bar(tokenizer, [program, *ids]) == ids[:10]
    assert salvaged_bar(tokenizer, [program, *ids[:10]]) == ids[:10]
    assert salvaged_bar(tokenizer, ids) is None  # no Program: nothing to salvage
    assert salvaged_bar(tokenizer, [program, *ids[2:]]) is None  # no Bar


def test_note_f1_counts_onset_and_pitch_matches():
    ref = [BarNote(0, 60, 80, "1.0.4"), BarNote(4, 62, 80, "1.0.4"), BarNote(8, 64, 80, "1.0.4")]
    pred = [BarNote(0, 60, 50, "0.1.4"), BarNote(4, 63, 80, "1.0.4")]
    assert note_f1(ref, pred) == (1, 3, 2)
    assert precision_recall_f1(1, 3, 2) == pytest.approx((0.5, 1 / 3, 0.4))
    assert precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("bucket_size", [7, 50, 10**6])
def test_length_buckets_cover_every_phrase_once(fixture_dataset, bucket_size):
    batcher = PhraseBatcher(fixture_dataset, 160, bucket_size=bucket_size)
    merged = np.concatenate(batcher.buckets)
    assert sorted(merged.tolist()) == sorted(batcher.indices.tolist())
    assert len(batcher.buckets) == 1 or min(len(b) for b in batcher.buckets) >= bucket_size
    lengths = np.diff(fixture_dataset.shard.offsets)[fixture_dataset.phrase_indices]
    maxima = [lengths[b].max() for b in batcher.buckets]
    assert maxima == sorted(maxima)  # buckets hold increasing lengths
