"""PhraseVAE training recipe: the three-stage curriculum on top of the shared loop.

Stages (seed 000, section 3.3), by share of the total steps:
1. span infilling: the encoder sees the phrase with random spans replaced by MASK and the
   decoder rebuilds the whole phrase from z = mu (learns REMI grammar and robust codes);
2. autoencoder: clean input, z = mu, no KL;
3. VAE: z ~ q(z|x), loss = reconstruction + beta * KL with beta annealed linearly from 0
   to `beta` over the first `beta_warmup` of the stage, and free bits: a latent dimension
   whose batch-mean KL is under `free_bits` nats is not pushed further toward the prior,
   which keeps the posterior from collapsing.

KL weighting (`beta_per`). By default (`"token"`) beta weighs the KL against one token's
mean reconstruction loss, as the shipped codec was trained. The seed's reconstruction term is
-log p(x|z) (here the label-smoothed token cross-entropy) summed over the phrase's tokens, so
its beta weighs the KL against a whole phrase (`"phrase"`: the loss is that per-phrase ELBO
divided by the batch's mean phrase length, to stay on the per-token scale of the logs), a KL
weight about 16 times smaller on POP909 bars (their mean length in tokens). `"phrase"` codes
bars more sharply and reconstructs them better, but a LatentMamba prior trained the same way
on its latents generates worse music (BENCHMARKS.md, issue 5), hence the default.

Decoder noise (`decoder_noise > 0`): in the VAE stage the decoder sees z plus isotropic
Gaussian noise whose std is drawn per phrase, uniformly in [0, decoder_noise], so that it
also learns to write a grammatical, plausible bar from a latent that misses every code, as a
prior's samples do. With `freeze_encoder` only the decoder trains: the codes stay exactly as
they were, so a prior and a critic trained on them still apply.

Optional factorization regulariser (seed 001, `factorize > 0`): each step also encodes
`factorize_bars` pitched, non-empty bars of the batch and four shifted copies of each (two
transpositions, two onset shifts; data/bar_shifts.py) and adds `factorize` times the
cosine-target loss of training/factorization.py on the differences of their means, so that
transposition and time shift become directions of the latent space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musemorphic.data.bar_shifts import pitched, shift_bar
from musemorphic.data.phrase_batches import PhraseBatcher, codec_batch
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.models.phrase_vae import PhraseVAE, PhraseVAEConfig, kl_per_dim, phrase_vae_config
from musemorphic.training.checkpoint import load_model_checkpoint
from musemorphic.training.factorization import PITCH, FactorizationConfig, draw_shifts, factorization_loss

STAGES = ("infill", "ae", "vae")


@dataclass
class CurriculumConfig:
    infill_fraction: float = 0.15
    ae_fraction: float = 0.35
    beta: float = 0.01
    beta_warmup: float = 0.2  # share of the VAE stage over which beta ramps up
    free_bits: float = 0.1  # nats per latent dimension
    mask_ratio: float = 0.3  # share of tokens masked in the infilling stage
    mean_span: float = 3.0
    factorize: float = 0.0  # weight of the factorization regulariser (0 = off)
    factorize_bars: int = 8  # bars per step it looks at (each encoded 5 times)
    max_pitch_shift: int = 6  # semitones
    max_time_shift: int = 4  # REMI positions (a quarter of the 1/d beat: sixteenths in n/4)
    beta_per: str = "token"  # "token" (the shipped codec's) or "phrase" (the seed's loss)
    decoder_noise: float = 0.0  # largest std of the noise added to the decoder's z (0 = off)
    freeze_encoder: bool = False  # train the decoder only (fine-tuning a trained codec)

    def __post_init__(self):
        if self.beta_per not in ("phrase", "token"):
            raise ValueError(f"beta_per must be 'phrase' or 'token', got {self.beta_per!r}")
        if self.decoder_noise < 0:
            raise ValueError(f"decoder_noise must be >= 0, got {self.decoder_noise}")

    @classmethod
    def fine_tune(cls, **overrides) -> CurriculumConfig:
        """Start in the VAE stage at full beta (for training on from a trained model)."""
        return cls(**{"infill_fraction": 0.0, "ae_fraction": 0.0, "beta_warmup": 0.0, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CurriculumConfig:
        """A saved curriculum (one saved before `beta_per` existed weighed beta per token)."""
        return cls(**{"beta_per": "token", **d})


def span_mask(ids: torch.Tensor, mask_id: int, pad_id: int, ratio: float, mean_span: float, rng: np.random.Generator) -> torch.Tensor:
    """Mask round(ratio * (length - 1)) real tokens per row, in Poisson-length spans.

    Position 0 (the Program) and padding are never masked.
    """
    out = ids.clone()
    lengths = (ids != pad_id).sum(dim=1).tolist()
    for row, length in enumerate(lengths):
        masked = np.zeros(length, dtype=bool)
        budget = int(round(ratio * (length - 1)))
        while budget > 0:
            start = int(rng.integers(1, length))
            span = max(1, int(rng.poisson(mean_span)))
            for pos in range(start, min(length, start + span)):
                if budget > 0 and not masked[pos]:
                    masked[pos] = True
                    budget -= 1
        out[row, torch.from_numpy(np.flatnonzero(masked))] = mask_id
    return out


class PhraseVAETask:
    """Batches and losses for `training.loop.train`."""

    def __init__(
        self,
        model: PhraseVAE,
        batcher: PhraseBatcher,
        total_steps: int,
        batch_size: int,
        seed: int,
        curriculum: CurriculumConfig = CurriculumConfig(),
    ):
        self.model = model
        self.batcher = batcher
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.seed = seed
        self.curriculum = curriculum
        if curriculum.freeze_encoder:
            model.freeze_encoder()

    def stage(self, step: int) -> str:
        c = self.curriculum
        if step < c.infill_fraction * self.total_steps:
            return "infill"
        if step < (c.infill_fraction + c.ae_fraction) * self.total_steps:
            return "ae"
        return "vae"

    def beta(self, step: int) -> float:
        c = self.curriculum
        if self.stage(step) != "vae":
            return 0.0
        vae_start = (c.infill_fraction + c.ae_fraction) * self.total_steps
        ramp = max(1.0, c.beta_warmup * (self.total_steps - vae_start))
        return c.beta * min(1.0, (step - vae_start + 1) / ramp)

    def batch(self, step: int, rank: int) -> dict[str, torch.Tensor]:
        bars, programs = self.batcher.sample_bars(self.batch_size, self.seed, rank, step)
        ids = codec_batch(self.batcher.tokenizer, bars, programs)
        batch = {"ids": ids}
        if self.stage(step) == "infill":
            rng = np.random.default_rng([self.seed, rank, step, 1])
            cfg = self.model.config
            batch["encoder_ids"] = span_mask(ids, cfg.mask_id, cfg.pad_id, self.curriculum.mask_ratio, self.curriculum.mean_span, rng)
        if self.curriculum.factorize > 0:
            batch.update(self.shifted_views(bars, programs, np.random.SeedSequence([self.seed, rank, step, 2])))
        return batch

    def shifted_views(self, batch_bars: list[list[int]], batch_programs: list[int], seed: np.random.SeedSequence) -> dict[str, torch.Tensor]:
        """The first `factorize_bars` pitched bars of the batch as codec ids (N, T) and their
        four shifted copies (N * 4, T'), with kinds and signs (N, 4)."""
        tok, c = self.batcher.tokenizer, self.curriculum
        chosen = [(bar, p) for bar, p in zip(batch_bars, batch_programs) if pitched(tok, bar, p)][: c.factorize_bars]
        bars, programs = [bar for bar, _ in chosen], [p for _, p in chosen]
        if not bars:  # a batch of drums and silence: nothing to regularise this step
            return {}
        generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        shift_config = FactorizationConfig(max_pitch_shift=c.max_pitch_shift, max_time_shift=c.max_time_shift)
        kinds, signs, shifts = draw_shifts(len(bars), shift_config, generator)
        views = [
            shift_bar(tok, bar, semitones=s if k == PITCH else 0, positions=s if k != PITCH else 0)
            for bar, bar_kinds, bar_shifts in zip(bars, kinds.tolist(), shifts.tolist())
            for k, s in zip(bar_kinds, bar_shifts)
        ]
        return {
            "factor_anchor": codec_batch(tok, bars, programs),
            "factor_views": codec_batch(tok, views, [p for p in programs for _ in range(4)]),
            "factor_kinds": kinds,
            "factor_signs": signs,
        }

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        stage = self.stage(step)
        ids = batch["ids"]
        noise = self.curriculum.decoder_noise if stage == "vae" else 0.0
        logits, mu, logvar = model(ids, batch.get("encoder_ids"), sample=stage == "vae", decoder_noise=noise)
        reconstruction = self.model.reconstruction_loss(logits, ids)
        kl = kl_per_dim(mu.float(), logvar.float())  # (Z,)
        beta = self.beta(step)
        real = ids != self.model.config.pad_id
        kl_weight = beta if self.curriculum.beta_per == "token" else beta * len(ids) / real.sum()  # beta / mean phrase length
        loss = reconstruction + kl_weight * kl.clamp(min=self.curriculum.free_bits).sum()
        accuracy = (logits.argmax(-1) == ids)[real].float().mean()
        metrics = {
            "stage": STAGES.index(stage),
            "reconstruction": float(reconstruction.detach()),
            "kl": float(kl.sum().detach()),
            "beta": beta,
            "token_accuracy": float(accuracy),
        }
        if self.curriculum.factorize > 0:
            factorization = torch.zeros((), device=ids.device)
            if "factor_anchor" in batch:
                anchor, _ = self.model.encode(batch["factor_anchor"])  # (N, Z)
                views, _ = self.model.encode(batch["factor_views"])  # (N * 4, Z)
                factorization, _ = factorization_loss(
                    anchor.float(), views.float().view(len(anchor), 4, -1), batch["factor_kinds"], batch["factor_signs"]
                )
            loss = loss + self.curriculum.factorize * factorization
            metrics["factorization"] = float(factorization.detach())
        return loss, metrics

    def checkpoint_config(self) -> dict:
        return {
            "kind": "phrase_vae",
            "model": self.model.config.to_dict(),
            "curriculum": self.curriculum.to_dict(),
            "tokenizer": self.batcher.tokenizer.to_json(),
        }


def build_phrase_vae(tokenizer: PhraseTokenizer, preset: str, **overrides) -> PhraseVAE:
    """A fresh PhraseVAE sized for this tokenizer's vocabulary."""
    config = phrase_vae_config(
        preset,
        vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
        bos_id=tokenizer.bos_id,
        eos_id=tokenizer.eos_id,
        mask_id=tokenizer.mask_id,
        **overrides,
    )
    return PhraseVAE(config, torch.from_numpy(tokenizer.music_features()))


def load_phrase_vae(directory: str | Path) -> tuple[PhraseVAE, PhraseTokenizer]:
    """Rebuild a PhraseVAE and its tokenizer from a checkpoint folder (strict weights)."""
    ckpt = load_model_checkpoint(directory, "phrase_vae", "PhraseVAE")
    if ckpt.config.get("codec", "autoregressive") != "autoregressive":
        raise ValueError(f"{directory}: a {ckpt.config['codec']} codec, not an autoregressive PhraseVAE (load it with load_codec)")
    tokenizer = PhraseTokenizer.from_json(ckpt.config["tokenizer"])
    model = PhraseVAE(PhraseVAEConfig.from_dict(ckpt.config["model"]), torch.from_numpy(tokenizer.music_features()))
    model.load_state_dict(ckpt.weights, strict=True)
    return model.eval(), tokenizer
