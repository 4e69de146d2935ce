"""Short PhraseVAE training probes: which recipe change learns reconstruction fastest here?

Each variant is the `small` preset with some config fields overridden (or one of two classic
ways to make an autoregressive decoder lean on its latent: word dropout, which hides a share
of the decoder's teacher-forced inputs behind MASK, and a bag-of-tokens loss, which asks a
linear head to predict the phrase's tokens, in any order, from z alone), trained from the same
seed for `--steps` steps of the autoencoder stage (clean input, z = mu, no KL) through the
shared training loop, without augmentation. Every variant is then measured on the same 512
non-empty test-split phrases: teacher-forced token accuracy and NLL (nats per token, no label
smoothing) decoding from the posterior mean, and the NLL with the latents shuffled across
phrases (how much of the fit comes from z rather than from the decoder's own language model).

    cd benchmarks && OMP_NUM_THREADS=1 python phrase_vae_recipes.py --data ../data/pop909 --steps 300 --set config
    cd benchmarks && OMP_NUM_THREADS=1 python phrase_vae_recipes.py --data ../data/pop909 --steps 500 --set latent-use
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.loop import TrainConfig, train
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae

VARIANT_SETS = {  # name -> (model config overrides, LatentUseProbe options)
    "config": {  # the `small` preset as it was when these probes ran (dropout 0.1), and one change each
        "small, dropout 0.1": ({"dropout": 0.1}, {}),
        "no dropout (the small preset since session 8)": ({"dropout": 0.0}, {}),
        "no sigma-reparam": ({"dropout": 0.1, "sigma_reparam": False}, {}),
        "d_model 128": ({"dropout": 0.1, "d_model": 128}, {}),
    },
    "latent-use": {  # the `small` preset of today (no dropout)
        "small": ({}, {}),
        "word dropout 0.3": ({}, {"word_dropout": 0.3}),
        "bag-of-tokens loss, weight 1": ({}, {"bag": 1.0}),
    },
    "small": {"small": ({}, {})},  # today's preset alone (e.g. to compare --lr)
}


class LatentUseProbe(PhraseVAETask):
    """The autoencoder stage, optionally with word dropout on the decoder's inputs and a
    bag-of-tokens loss from the latent (an extra linear head, for this probe only)."""

    def __init__(self, *args, word_dropout: float = 0.0, bag: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.word_dropout, self.bag = word_dropout, bag
        c = self.model.config
        self.bag_head = nn.Linear(c.d_latent, c.vocab_size) if bag > 0 else None
        if self.bag_head is not None:
            self.model.add_module("bag_head", self.bag_head)  # trained by the shared loop's optimizer

    def loss(self, model, batch, step):
        if not (self.word_dropout or self.bag):
            return super().loss(model, batch, step)
        ids, c = batch["ids"], self.model.config
        real = ids != c.pad_id  # (B, T)
        mu, _ = self.model.encode(ids)  # (B, Z)
        inputs = self.model.decoder_inputs(ids)
        if self.word_dropout:
            hidden = (torch.rand(inputs.shape, device=inputs.device) < self.word_dropout) & (inputs != c.pad_id)  # the loop seeded torch once
            hidden[:, 0] = False  # BOS stays
            inputs = inputs.masked_fill(hidden, c.mask_id)
        logits = self.model.decode_logits(mu, inputs)
        loss = self.model.reconstruction_loss(logits, ids)
        metrics = {"reconstruction": float(loss.detach()), "token_accuracy": float((logits.argmax(-1) == ids)[real].float().mean())}
        if self.bag_head is not None:
            log_probs = self.bag_head(mu).log_softmax(-1)  # (B, V)
            bag = -(log_probs.gather(1, ids) * real).sum() / real.sum()
            loss = loss + self.bag * bag
            metrics["bag"] = float(bag.detach())
        return loss, metrics


@torch.no_grad()
def held_out_fit(model, ids: torch.Tensor) -> dict:
    """Token accuracy and NLL from mu, and NLL with mu shuffled across rows; ids (B, T)."""
    model.eval()
    real = ids != model.config.pad_id
    mu, _ = model.encode(ids)
    inputs = model.decoder_inputs(ids)
    logits = model.decode_logits(mu, inputs)
    shuffled = model.decode_logits(mu[torch.randperm(len(mu), generator=torch.Generator().manual_seed(0))], inputs)
    return {
        "token_accuracy": round(float((logits.argmax(-1) == ids)[real].float().mean()), 4),
        "nll": round(float(F.cross_entropy(logits[real], ids[real])), 4),
        "nll_shuffled_z": round(float(F.cross_entropy(shuffled[real], ids[real])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--set", choices=sorted(VARIANT_SETS), default="config", help="which variants to train")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set = PhraseDataset(args.data, split="train")
    test_batcher = PhraseBatcher(PhraseDataset(args.data, split="test"), 160, nonempty_only=True)
    chosen = np.random.default_rng(0).choice(len(test_batcher.indices), 512, replace=False)
    test_ids = test_batcher.encode(test_batcher.indices[chosen])
    rows = []
    for name, (overrides, options) in VARIANT_SETS[args.set].items():
        torch.manual_seed(0)
        model = build_phrase_vae(train_set.tokenizer, "small", **overrides)
        batcher = PhraseBatcher(train_set, model.config.max_len)
        task = LatentUseProbe(model, batcher, args.steps, args.batch_size, seed=0,
                              curriculum=CurriculumConfig(infill_fraction=0.0, ae_fraction=1.0), **options)
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(out_dir=out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                 warmup_steps=min(50, args.steps // 10), checkpoint_every=args.steps)
            start = time.perf_counter()
            train(task, config)
            seconds = time.perf_counter() - start
        if task.bag_head is not None:
            del model.bag_head  # not part of the codec
        row = {"variant": name, "overrides": {**overrides, **options}, "parameters": sum(p.numel() for p in model.parameters()),
               "train_seconds": round(seconds, 1), "seconds_per_step": round(seconds / args.steps, 3),
               **held_out_fit(model, test_ids)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps({"machine": machine(), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "variants": rows}))


if __name__ == "__main__":
    main()
