"""LatentMamba: a selective state-space prior over sequences of phrase latents.

Seed 000, sections 3.4-3.6. A song is the (bar x track) grid of PhraseVAE latents,
read bar by bar and, inside a bar, track by track ("interleaved slots"):

    [ctrl_tempo, ctrl_key, ctrl_time_signature, ctrl_density, ctrl_style,
     slot(bar 0, track 0), slot(bar 0, track 1), ..., slot(bar 1, track 0), ...]

The input at a slot is the projection of the previous slot's latent (zeros before the
first) plus embeddings of the slot's track index and program, so the model always knows
which instrument it is writing for, plus (with `controls_every_slot`) the sum of the control
embeddings, so the controls reach every slot directly instead of only through the recurrent
state: a randomly initialised prefix-only model's prediction at slot 64 moves by less than
1e-4 when a prefix control changes (tests/test_latent_mamba.py), so a prefix alone gives
training little to learn from late in a window. The output predicts that slot's latent as a
Gaussian mixture. Interleaving (rather than one wide step per bar with fixed track slots) lets one
model serve songs with any number and kind of tracks, and lets a track see the tracks
written before it in the same bar. Empty phrases are latents like any other.

Each control is a class index or -1 for "unspecified" (embedding 0); training drops
controls at random so generation works with any subset of them.

Glossary: B batch, L slots, C controls (5), D model width, Z latent width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.models.config import JsonConfig
from musemorphic.nn.mamba import MambaStack
from musemorphic.nn.mixture import GaussianMixtureHead

CONTROL_NAMES = ("tempo", "key", "time_signature", "density", "style")
N_PROGRAMS = 129  # -1 (drums) .. 127, stored shifted by one


@dataclass
class RecurrentState:
    """What generation carries from slot to slot: the Mamba layers' states and the summed controls (B, D)."""

    layers: list
    control_sum: torch.Tensor


@dataclass
class LatentMambaConfig(JsonConfig):
    d_latent: int = 64
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    head: str = "gmm"  # "gmm" (sampled) or "mse" (regression baseline)
    n_components: int = 8
    max_tracks: int = 16
    time_signatures: list[str] = field(default_factory=lambda: ["4/4"])  # class vocabulary
    styles: list[str] = field(default_factory=list)  # class vocabulary
    control_dropout: float = 0.3
    key_normalized: bool = False  # trained on songs moved to C major / A minor (data/key_frame.py)
    controls_every_slot: bool = True  # summed controls join every slot's input, not only the prefix

    @classmethod
    def from_dict(cls, d: dict) -> LatentMambaConfig:
        """Configs saved before `controls_every_slot` existed read the controls as a prefix only."""
        return cls(**{"controls_every_slot": False, **d})

    @property
    def control_sizes(self) -> tuple[int, ...]:
        return (8, 24, len(self.time_signatures), 3, max(1, len(self.styles)))


PRESETS = {
    "tiny": dict(d_model=32, n_layers=2, d_state=8, n_components=2),
    "small": dict(d_model=128, n_layers=4),  # trains here: ~0.6M parameters
    "full": dict(d_model=256, n_layers=8),  # the seed's 8 x 256, d_state 16
}


def latent_mamba_config(preset: str, **overrides) -> LatentMambaConfig:
    return LatentMambaConfig.from_preset(PRESETS, preset, **overrides)


class LatentMamba(nn.Module):
    def __init__(self, config: LatentMambaConfig):
        super().__init__()
        if config.head not in ("gmm", "mse"):
            raise ValueError(f"head must be 'gmm' or 'mse', got {config.head!r}")
        self.config = c = config
        self.latent_in = nn.Linear(c.d_latent, c.d_model)
        self.track = nn.Embedding(c.max_tracks, c.d_model)
        self.program = nn.Embedding(N_PROGRAMS, c.d_model)
        self.controls = nn.ModuleList(nn.Embedding(n + 1, c.d_model) for n in c.control_sizes)  # 0 = unspecified
        self.control_kind = nn.Parameter(torch.randn(len(CONTROL_NAMES), c.d_model) * 0.02)  # (C, D)
        self.backbone = MambaStack(c.n_layers, c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand)
        if c.head == "gmm":
            self.head = GaussianMixtureHead(c.d_model, c.d_latent, c.n_components)
        else:
            self.head = nn.Linear(c.d_model, c.d_latent)

    # ---- inputs --------------------------------------------------------------------
    def control_tokens(self, controls: torch.Tensor) -> torch.Tensor:
        """controls (B, C) class indices, -1 = unspecified -> (B, C, D)."""
        tokens = [emb(controls[:, i] + 1) for i, emb in enumerate(self.controls)]
        return torch.stack(tokens, dim=1) + self.control_kind

    def control_sum(self, control_tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, D) -> (B, D): what every slot adds (zeros for a prefix-only model)."""
        return control_tokens.sum(1) if self.config.controls_every_slot else torch.zeros_like(control_tokens[:, 0])

    def slot_inputs(self, previous: torch.Tensor, tracks: torch.Tensor, programs: torch.Tensor, control_sum: torch.Tensor) -> torch.Tensor:
        """previous latents (B, L, Z), track indices and programs (B, L), summed controls (B, D) -> (B, L, D)."""
        return self.latent_in(previous) + self.track(tracks) + self.program(programs + 1) + control_sum[:, None]

    # ---- training ------------------------------------------------------------------
    def forward(
        self,
        controls: torch.Tensor,  # (B, C)
        latents: torch.Tensor,  # (B, L, Z) targets, in slot order
        tracks: torch.Tensor,  # (B, L)
        programs: torch.Tensor,  # (B, L)
        scan: str = "auto",
    ):
        """Teacher-forced predictions for every slot (head outputs over (B, L))."""
        previous = F.pad(latents[:, :-1], (0, 0, 1, 0))  # (B, L, Z): zeros before the first slot
        control_tokens = self.control_tokens(controls)  # (B, C, D)
        x = torch.cat([control_tokens, self.slot_inputs(previous, tracks, programs, self.control_sum(control_tokens))], dim=1)
        h, _ = self.backbone(x, scan=scan)  # (B, C + L, D)
        return self.head(h[:, len(CONTROL_NAMES) :])

    def loss(self, prediction, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over real slots (mask (B, L)) of the mixture NLL, or of the squared error."""
        if self.config.head == "gmm":
            per_slot = GaussianMixtureHead.nll(prediction, latents)  # (B, L)
        else:
            per_slot = (prediction.float() - latents.float()).pow(2).mean(-1)
        return (per_slot * mask).sum() / mask.sum().clamp(min=1)

    # ---- recurrent generation ------------------------------------------------------
    @torch.no_grad()
    def start(self, controls: torch.Tensor) -> RecurrentState:
        """Read the control tokens; returns the recurrent state (fixed size from here on)."""
        control_tokens = self.control_tokens(controls)  # (B, C, D)
        _, layers = self.backbone(control_tokens)
        return RecurrentState(layers, self.control_sum(control_tokens))

    @torch.no_grad()
    def step(self, previous: torch.Tensor, track: torch.Tensor, program: torch.Tensor, state: RecurrentState):
        """One slot: previous latent (B, Z), track and program (B,) -> (head output, state)."""
        x = self.slot_inputs(previous[:, None], track[:, None], program[:, None], state.control_sum)[:, 0]  # (B, D)
        h, layers = self.backbone.step(x, state.layers)
        return self.head(h), RecurrentState(layers, state.control_sum)

    def guide(self, prediction, weight: float):
        """Classifier-free guidance: batch row 0 conditioned, row 1 with every control unspecified
        -> one prediction (batch 1), row 1 + weight * (row 0 - row 1); the mixture keeps row 0's scales."""

        def push(x: torch.Tensor) -> torch.Tensor:
            return x[1:2] + weight * (x[0:1] - x[1:2])

        if self.config.head == "mse":
            return push(prediction)
        logits, means, log_scales = prediction
        return push(logits), push(means), log_scales[0:1]

    def sample(self, prediction, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.config.head == "mse":
            return prediction
        return GaussianMixtureHead.sample(prediction, temperature, generator)
