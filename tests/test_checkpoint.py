"""Checkpoints: exact resume (weights, AdamW state, RNG), strict loading, crash-safe swap, no pickle."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from musemorphic.training.checkpoint import (
    capture_rng_state,
    checkpoint_exists,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)

CONFIG = {"model": {"d_in": 4, "d_hidden": 8}, "lr": 1e-2}


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, i: int) -> None:
    g = torch.Generator().manual_seed(100 + i)
    x, y = torch.randn(5, 4, generator=g), torch.randn(5, 2, generator=g)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


@pytest.fixture
def trained():
    model = _model(0)
    optimizer = _optimizer(model)
    for i in range(3):
        _train_step(model, optimizer, i)
    return model, optimizer


def test_resume_is_exact(tmp_path, trained):
    model, optimizer = trained
    save_checkpoint(tmp_path / "ckpt", model, CONFIG, optimizer=optimizer, step=3)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.step == 3 and ckpt.config == CONFIG and ckpt.extra_state is None

    fresh = _model(1)
    fresh_opt = _optimizer(fresh)
    load_model_weights(fresh, ckpt)
    fresh_opt.load_state_dict(ckpt.optimizer_state)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_opt.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]

    _train_step(model, optimizer, 3)
    _train_step(fresh, fresh_opt, 3)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


def test_strict_loading_catches_missing_key(tmp_path, trained):
    save_checkpoint(tmp_path / "ckpt", trained[0], CONFIG)
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.optimizer_state is None
    del ckpt.weights["2.bias"]
    with pytest.raises(RuntimeError, match="2.bias"):
        load_model_weights(_model(1), ckpt)


def test_tied_weights_round_trip(tmp_path):
    model = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 6, bias=False))
    model[1].weight = model[0].weight
    save_checkpoint(tmp_path / "ckpt", model, {})
    fresh = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 6, bias=False))
    fresh[1].weight = fresh[0].weight
    load_model_weights(fresh, load_checkpoint(tmp_path / "ckpt"))
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_crash_during_swap_keeps_previous_checkpoint(tmp_path, trained, monkeypatch):
    model, optimizer = trained
    target = tmp_path / "ckpt"
    save_checkpoint(target, model, CONFIG, optimizer=optimizer, step=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _train_step(model, optimizer, 3)

    real_rename, calls = os.rename, []

    def crashing_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # after `ckpt` -> `ckpt.old`, before tmp -> `ckpt`
            raise OSError("simulated crash")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crashing_rename)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(target, model, CONFIG, optimizer=optimizer, step=4)
    monkeypatch.setattr(os, "rename", real_rename)

    assert not target.exists() and checkpoint_exists(target)
    ckpt = load_checkpoint(target)  # falls back to ckpt.old
    assert ckpt.step == 3 and ckpt.optimizer_state is not None
    assert all(torch.equal(ckpt.weights[k], v) for k, v in before.items())

    save_checkpoint(target, model, CONFIG, step=4)  # the next save recovers and cleans up
    assert load_checkpoint(target).step == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_rng_state_round_trip(tmp_path, trained):
    assert seed_everything(7, rank=2) == 9
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    save_checkpoint(tmp_path / "ckpt", trained[0], CONFIG, extra_state={"rng": state, "zclip": {"mean": 1.0}})
    seed_everything(123)

    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.extra_state["zclip"] == {"mean": 1.0}
    restore_rng_state(ckpt.extra_state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_no_pickle_in_checkpoint(tmp_path, trained):
    model, optimizer = trained
    target = save_checkpoint(
        tmp_path / "ckpt", model, CONFIG, optimizer=optimizer, extra_state={"rng": capture_rng_state()}
    )
    names = sorted(p.name for p in target.iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "state.json"]
    for path in target.iterdir():
        head = path.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK"  # pickle protocol / torch.save zip
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            with safe_open(path, framework="pt") as f:
                keys = set(f.keys())
            assert keys
    with safe_open(target / "optimizer.safetensors", framework="pt") as f:
        assert f.get_tensor("extra.rng.torch").dtype == torch.uint8
        assert "state.0.exp_avg" in f.keys()


def test_clear_errors(tmp_path, trained):
    assert not checkpoint_exists(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    target = save_checkpoint(tmp_path / "ckpt", trained[0], CONFIG)
    (target / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(target)
    (target / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        load_checkpoint(target)


def test_exported_half_precision_copy_reloads_strictly(tmp_path):
    from musemorphic.training.checkpoint import export_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "full", model, {"kind": "test"}, optimizer=opt, step=7)
    export_model(tmp_path / "full", tmp_path / "shipped")
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["config.json", "model.safetensors"]
    shipped = load_checkpoint(tmp_path / "shipped")
    assert shipped.step == 7 and shipped.config == {"kind": "test"}
    assert all(t.dtype == torch.float16 for t in shipped.weights.values())
    again = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    again.load_state_dict(shipped.weights, strict=True)
    assert again[0].weight.dtype == torch.float32
    torch.testing.assert_close(again[0].weight, model[0].weight, atol=1e-3, rtol=1e-3)
