"""The shared training loop: resume equals uninterrupted, checkpoints reload strictly, DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.checkpoint import load_checkpoint
from musemorphic.training.loop import TrainConfig, leave_process_group, learning_rate, make_optimizer, train
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae, load_phrase_vae

TESTS = Path(__file__).parent


def _task(dataset, steps: int, dropout: float = 0.1) -> PhraseVAETask:
    torch.manual_seed(0)
    model = build_phrase_vae(dataset.tokenizer, "tiny", dropout=dropout)
    batcher = PhraseBatcher(dataset, model.config.max_len)
    curriculum = CurriculumConfig(infill_fraction=0.25, ae_fraction=0.25)  # all three stages in a short run
    return PhraseVAETask(model, batcher, total_steps=steps, batch_size=8, seed=0, curriculum=curriculum)


def _config(out_dir, steps: int) -> TrainConfig:
    return TrainConfig(out_dir=str(out_dir), steps=steps, batch_size=8, lr=2e-3, warmup_steps=2, checkpoint_every=3, log_every=1)


class Interrupt(Exception):
    pass


def test_resumed_run_reproduces_the_uninterrupted_losses(fixture_dataset, tmp_path):
    steps = 12
    whole = train(_task(fixture_dataset, steps), _config(tmp_path / "whole", steps)).losses

    def stop_after_seven(done, total, row):
        if done == 7:  # checkpoint at 6; steps 6 is redone after the resume
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_task(fixture_dataset, steps), _config(tmp_path / "split", steps), progress=stop_after_seven)
    resumed = train(_task(fixture_dataset, steps), _config(tmp_path / "split", steps)).losses
    assert sorted(resumed) == list(range(6, steps))
    assert [resumed[s] for s in range(6, steps)] == [whole[s] for s in range(6, steps)]
    logged = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in logged[1:]] == list(range(steps))  # no duplicated rows
    elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(logged)]
    assert elapsed == sorted(elapsed)  # the clock carries on over the resume


def test_a_run_resumes_only_with_the_settings_it_began_with(fixture_dataset, tmp_path):
    train(_task(fixture_dataset, 3), _config(tmp_path, 3))
    with pytest.raises(ValueError, match=r"other settings \(model.dropout differ\)"):
        train(_task(fixture_dataset, 6, dropout=0.0), _config(tmp_path, 6))
    assert sorted(train(_task(fixture_dataset, 6), _config(tmp_path, 6)).losses) == [3, 4, 5]


def test_checkpoint_reloads_strictly_into_an_identical_model(fixture_dataset, tmp_path):
    task = _task(fixture_dataset, 3)
    train(task, _config(tmp_path, 3))
    model, tokenizer = load_phrase_vae(tmp_path / "checkpoint")
    assert tokenizer.to_json() == fixture_dataset.tokenizer.to_json()
    task.model.eval()
    ids = task.batcher.encode(task.batcher.indices[:4])
    for a, b in zip(task.model(ids), model(ids), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    config = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert config["kind"] == "phrase_vae" and config["step"] == 3


def test_snapshots_keep_the_weights_of_their_step(fixture_dataset, tmp_path):
    task, at_four = _task(fixture_dataset, 6), {}

    def remember_step_four(done, total, row):
        if done == 4:
            at_four.update({k: v.clone() for k, v in task.model.state_dict().items()})

    train(task, TrainConfig(**{**_config(tmp_path, 6).to_dict(), "keep_every": 2}), progress=remember_step_four)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["step-000002", "step-000004", "step-000006"]
    snapshot = load_checkpoint(tmp_path / "snapshots" / "step-000004")
    assert snapshot.step == 4 and snapshot.optimizer_state is None and snapshot.extra_state["elapsed_s"] > 0
    model, _ = load_phrase_vae(tmp_path / "snapshots" / "step-000004")
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(weight, at_four[name], rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(at_four["head.weight"], task.model.state_dict()["head.weight"])  # training went on after it


def test_weight_decay_only_on_matrices(fixture_dataset):
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny")
    decay, no_decay = make_optimizer(model, TrainConfig(out_dir="unused")).param_groups
    assert decay["weight_decay"] > 0 and no_decay["weight_decay"] == 0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(out_dir="unused", steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(config, s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] >= 0.1


def test_ddp_over_gloo_keeps_replicas_identical(fixture_dataset_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(TESTS / "ddp_worker.py"), str(fixture_dataset_dir), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    written = sorted(path.name for path in tmp_path.glob("rank*.json"))
    assert done.returncode == 0, f"reports written: {written}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["params"] == reports[1]["params"]  # replicas stay identical
    assert reports[0]["first_batch"] != reports[1]["first_batch"]  # but saw different data
    assert reports[0]["moved"]  # and training changed them
    assert reports[0]["stopped_after"] == reports[1]["stopped_after"] == 1  # out of time on rank 0 alone: both stop


def test_leave_process_group_closes_the_group_and_is_a_no_op_without_one(tmp_path):
    import torch.distributed as dist

    leave_process_group()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        leave_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():  # leave no group behind for later tests
            dist.destroy_process_group()
