"""Run by test_training_loop under torchrun: 2 CPU ranks over gloo train a tiny PhraseVAE, then
stop a second run at a time limit that one rank alone has reached."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.loop import TrainConfig, leave_process_group, train
from musemorphic.training.phrase_vae import PhraseVAETask, build_phrase_vae


def main(data_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dataset = PhraseDataset(data_dir, split=None)
    torch.manual_seed(0)  # same initial weights on both ranks
    model = build_phrase_vae(dataset.tokenizer, "tiny")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    task = PhraseVAETask(model, PhraseBatcher(dataset, model.config.max_len), total_steps=3, batch_size=4, seed=0)
    train(task, TrainConfig(out_dir=out_dir + "/run", steps=3, batch_size=4, warmup_steps=1, checkpoint_every=3))
    rank = dist.get_rank()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    report = {
        "params": [round(float(x), 6) for x in after[:: max(1, len(after) // 500)]],
        "first_batch": task.batch(0, rank)["ids"].tolist(),
        "moved": bool((after - before).abs().max() > 0),
    }
    # a time limit reached on one rank only (their clocks differ) stops both at the same step
    limit = 0.0 if rank == 0 else None
    late = train(task, TrainConfig(out_dir=out_dir + "/late", steps=3, batch_size=4, warmup_steps=1, max_minutes=limit))
    report["stopped_after"] = late.steps_done
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(report))
    leave_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # The claims under test are in the reports. Skip the interpreter's teardown, where gloo's threads
    # once aborted a rank (CI, 2026-12-06: "terminate called without an active exception").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
