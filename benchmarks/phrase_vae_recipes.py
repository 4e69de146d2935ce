"""Short PhraseVAE training probes: which recipe change learns reconstruction fastest here?

Each variant is the `small` preset with some config fields overridden, trained from the same
seed for `--steps` steps of the autoencoder stage (clean input, z = mu, no KL) through the
shared training loop, without augmentation. Every variant is then measured on the same 512
non-empty test-split phrases: teacher-forced token accuracy and NLL (nats per token, no label
smoothing) decoding from the posterior mean, and the NLL with the latents shuffled across
phrases (how much of the fit comes from z rather than from the decoder's own language model).

    cd benchmarks && OMP_NUM_THREADS=1 python phrase_vae_recipes.py --data ../data/pop909 --steps 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.loop import TrainConfig, train
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae

VARIANTS = {  # the `small` preset as it was when these probes ran (dropout 0.1), and one change each
    "small, dropout 0.1": {"dropout": 0.1},
    "no dropout (the small preset since session 8)": {"dropout": 0.0},
    "no sigma-reparam": {"dropout": 0.1, "sigma_reparam": False},
    "d_model 128": {"dropout": 0.1, "d_model": 128},
}


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_set = PhraseDataset(args.data, split="train")
    test_batcher = PhraseBatcher(PhraseDataset(args.data, split="test"), 160, nonempty_only=True)
    chosen = np.random.default_rng(0).choice(len(test_batcher.indices), 512, replace=False)
    test_ids = test_batcher.encode(test_batcher.indices[chosen])
    rows = []
    for name, overrides in VARIANTS.items():
        torch.manual_seed(0)
        model = build_phrase_vae(train_set.tokenizer, "small", **overrides)
        batcher = PhraseBatcher(train_set, model.config.max_len)
        task = PhraseVAETask(model, batcher, args.steps, args.batch_size, seed=0,
                             curriculum=CurriculumConfig(infill_fraction=0.0, ae_fraction=1.0))
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(out_dir=out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                 warmup_steps=min(50, args.steps // 10), checkpoint_every=args.steps)
            start = time.perf_counter()
            train(task, config)
            seconds = time.perf_counter() - start
        row = {"variant": name, "overrides": overrides, "parameters": sum(p.numel() for p in model.parameters()),
               "train_seconds": round(seconds, 1), "seconds_per_step": round(seconds / args.steps, 3),
               **held_out_fit(model, test_ids)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps({"machine": machine(), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "variants": rows}))


if __name__ == "__main__":
    main()
