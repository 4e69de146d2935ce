"""LatentMamba training recipe: windows of songs' latent grids, with their controls.

A training item is a window of whole bars of one song in slot order (bar by bar, track
by track; see models/latent_mamba.py), with the song's control classes (with
`key_normalized`, the latents and the key are those of the song moved to C major / A minor);
each control is dropped (set to -1, "unspecified") with probability `control_dropout`. A
share `song_start_share` of windows opens at the song's first bar: there the controls are
all the model has to go on, which is where it learns to follow them (mid-song, the bars
before already say the key and the density). Batches are drawn
from a generator seeded by (seed, rank, step), so resuming reproduces the same batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from musemorphic.data import controls as ctl
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.key_frame import normalized_key
from musemorphic.models.latent_mamba import LatentMamba, LatentMambaConfig, latent_mamba_config
from musemorphic.training.checkpoint import load_model_checkpoint


class SongControlsEncoder:
    """Song control labels <-> class indices of a LatentMamba config."""

    def __init__(self, config: LatentMambaConfig):
        self.config = config

    def encode(self, tempo: float | None, key: int, time_signature: str | None, density: int, style: str | None) -> list[int]:
        ts = self.config.time_signatures
        styles = self.config.styles
        return [
            -1 if tempo is None else ctl.tempo_class(tempo),
            key,
            ts.index(time_signature) if time_signature in ts else -1,
            density,
            styles.index(style) if style in styles else -1,
        ]


class LatentSongWindows:
    """Song latent grids of one split, cut into windows of whole bars."""

    def __init__(
        self, dataset: PhraseDataset, all_latents: np.ndarray, config: LatentMambaConfig, window_slots: int, song_start_share: float = 0.0
    ):
        self.dataset, self.config, self.window_slots = dataset, config, window_slots
        self.song_start_share = song_start_share  # windows that open at bar 0, where only the controls say what comes
        encoder = SongControlsEncoder(config)
        self.songs = []  # (phrase rows in slot order (n_bars, n_tracks), programs, controls)
        cols = dataset.shard.columns
        for song in dataset.song_indices:
            meta = dataset.shard.songs[song]
            n_tracks, n_bars = len(meta["programs"]), meta["n_bars"]
            if n_tracks > config.max_tracks or n_bars == 0:
                continue
            first = int(np.searchsorted(cols["phrase_song"], song))
            rows = first + np.arange(n_tracks)[None, :] * n_bars + np.arange(n_bars)[:, None]  # (n_bars, n_tracks)
            labels = dataset.song_controls(song)
            key = normalized_key(labels.key) if config.key_normalized else labels.key
            summary = meta["controls"]
            self.songs.append(
                (rows, np.asarray(meta["programs"]), encoder.encode(summary["tempo"], key, labels.time_signature, labels.density_level, labels.style))
            )
        if not self.songs:
            raise ValueError(f"{dataset.directory}: no song fits a LatentMamba (<= {config.max_tracks} tracks)")
        self.latents = all_latents
        self.silent = cols["phrase_n_notes"] == 0  # per phrase row: a bar of this track with no notes
        self.weights = np.array([rows.size for rows, _, _ in self.songs], dtype=np.float64)
        self.weights /= self.weights.sum()

    def window(self, song: int, start_bar: int, n_bars: int):
        rows, programs, controls = self.songs[song]
        rows = rows[start_bar : start_bar + n_bars]  # (bars, tracks)
        n_tracks = rows.shape[1]
        latents = self.latents[rows.reshape(-1)]  # (bars * tracks, Z)
        tracks = np.tile(np.arange(n_tracks), len(rows))
        return latents, tracks, np.tile(programs, len(rows)), controls, self.silent[rows.reshape(-1)]

    def sample(self, batch_size: int, seed: int, rank: int, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, rank, step])
        items = []
        for song in rng.choice(len(self.songs), size=batch_size, p=self.weights):
            rows = self.songs[song][0]
            n_bars = max(1, self.window_slots // rows.shape[1])
            at_start = self.song_start_share > 0 and rng.random() < self.song_start_share
            start = 0 if at_start else int(rng.integers(0, max(1, rows.shape[0] - n_bars + 1)))
            latents, tracks, programs, controls, silent = self.window(song, start, n_bars)
            dropped = [c if rng.random() >= self.config.control_dropout else -1 for c in controls]
            items.append((latents, tracks, programs, dropped, silent))
        return collate(items, self.config.d_latent)


def collate(items, d_latent: int) -> dict[str, torch.Tensor]:
    L = max(len(it[0]) for it in items)
    B = len(items)
    batch = {
        "latents": torch.zeros(B, L, d_latent),
        "tracks": torch.zeros(B, L, dtype=torch.long),
        "programs": torch.zeros(B, L, dtype=torch.long),
        "mask": torch.zeros(B, L),
        "silent": torch.zeros(B, L, dtype=torch.bool),  # the slot's bar has no notes
        "controls": torch.tensor([it[3] for it in items], dtype=torch.long),
    }
    for i, (latents, tracks, programs, _, silent) in enumerate(items):
        n = len(latents)
        batch["silent"][i, :n] = torch.from_numpy(np.asarray(silent, dtype=bool))
        batch["latents"][i, :n] = torch.from_numpy(np.asarray(latents, dtype=np.float32))
        batch["tracks"][i, :n] = torch.from_numpy(tracks)
        batch["programs"][i, :n] = torch.from_numpy(programs)
        batch["mask"][i, :n] = 1
    return batch


class LatentMambaTask:
    """Batches and loss for `training.loop.train`."""

    def __init__(self, model: LatentMamba, windows: LatentSongWindows, batch_size: int, seed: int, codec_config: dict):
        self.model, self.windows, self.batch_size, self.seed = model, windows, batch_size, seed
        self.codec_config = codec_config

    def batch(self, step: int, rank: int) -> dict[str, torch.Tensor]:
        return self.windows.sample(self.batch_size, self.seed, rank, step)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        prediction = model(batch["controls"], batch["latents"], batch["tracks"], batch["programs"])
        loss = self.model.loss(prediction, batch["latents"], batch["mask"], batch["silent"])
        return loss, {"slots": float(batch["mask"].sum())}

    def checkpoint_config(self) -> dict:
        return {"kind": "latent_mamba", "model": self.model.config.to_dict(), "codec": self.codec_config}


def build_latent_mamba(dataset: PhraseDataset, preset: str, **overrides) -> LatentMamba:
    """A fresh LatentMamba whose control vocabularies come from the dataset."""
    time_signatures = sorted(t.split("_")[1] for t in dataset.tokenizer.base_vocab if t.startswith("TimeSig_"))
    config = latent_mamba_config(preset, time_signatures=time_signatures, styles=list(dataset.summary["styles"]), **overrides)
    return LatentMamba(config)


def fine_tuned_latent_mamba(start: LatentMamba, **training_options) -> LatentMamba:
    """A float32 LatentMamba with `start`'s architecture and weights and new training-only
    options (`input_noise`), to train further."""
    model = LatentMamba(LatentMambaConfig.from_dict({**start.config.to_dict(), **training_options}))
    model.load_state_dict(start.state_dict(), strict=True)  # copied into float32
    return model


def load_latent_mamba(directory: str | Path) -> tuple[LatentMamba, dict]:
    """Rebuild a LatentMamba from its checkpoint (strict); also returns the codec record."""
    ckpt = load_model_checkpoint(directory, "latent_mamba", "LatentMamba")
    model = LatentMamba(LatentMambaConfig.from_dict(ckpt.config["model"]))
    model.load_state_dict(ckpt.weights, strict=True)
    return model.eval(), ckpt.config["codec"]

