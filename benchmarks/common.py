"""Shared helpers for benchmarks: machine description, robust timing, priors with the test songs."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import torch


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def prior_benchmark_args(doc: str, prior_help: str) -> argparse.Namespace:
    """--codec, --data and repeatable --prior: the inputs of `priors_on_test_songs`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--prior", type=Path, action="append", required=True, help=prior_help)
    return parser.parse_args()


def priors_on_test_songs(codec_path, data, prior_paths):
    """Yield (path, prior, windows) for each LatentMamba checkpoint: the prior and the test
    split's songs as `LatentSongWindows` in its key frame (latents encoded once and cached)."""
    from musemorphic.data.dataset import PhraseDataset
    from musemorphic.models.codec_identity import learned_from
    from musemorphic.training.latent_mamba import LatentSongWindows, load_latent_mamba
    from musemorphic.training.latents import cached_latents
    from musemorphic.training.grid_codec import load_codec

    codec, _ = load_codec(codec_path)
    test = PhraseDataset(data, split="test")
    for path in prior_paths:
        model, record = load_latent_mamba(path)
        if not learned_from(record, codec):
            raise SystemExit(f"{path} was trained on the latents of another codec than {codec_path}")
        latents = cached_latents(codec, codec_path, data, key_normalized=model.config.key_normalized)
        yield path, model, LatentSongWindows(test, latents, model.config, window_slots=1)
