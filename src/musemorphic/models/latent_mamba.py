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
written before it in the same bar. Empty phrases are latents like any other: one latent per
program and time signature, so a mixture component can sit on it as tightly as the scale floor
`min_log_scale` allows. The floor (e^-3 = 0.05; chosen by hand, not tuned) keeps that component
from narrowing without end: at e^-7 the gradient norm grew all through training (median 12 over
the first 300 steps, 104 over the last 300; at most 1.1 per 300 steps with the floor), and the
prior learned less of everything else (BENCHMARKS.md, "Scale floor").

Track memory (optional, `track_memory_decay` > 0; off by default): each slot also gets its
own track's moving average of latents so far (`TrackMemory`; generation keeps one average per
track, fixed memory), and each mixture component's mean becomes an offset plus a gated share
of that average (gate in [0, 1] per component and slot; a shut gate leaves a component at a
fixed place, as the one latent of an empty bar needs). On POP909 such an average predicts the
next latent better than a prior trained without it, which a Mamba state shared by interleaved
tracks learns only slowly; the option improves the held-out likelihood, but free-running
generation then drifts into silence (BENCHMARKS.md, "Track memory").

Silence head (optional, `silence_head`; off by default): beside the mixture, a logit per slot
for "this track is silent in this bar" (a bar with no notes). The mixture then models the
sounding bars only, and a silent slot's latent is the codec's code of an empty bar, which the
generator supplies. The slot's likelihood is p(silent), or (1 - p(silent)) times the mixture's
density. Without it an empty bar is one more mixture component whose weight trades off
against fitting the sounding bars; with it the choice is its own calibrated probability.

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
    memory: TrackMemory
    last_track: torch.Tensor | None = None  # (B,) track of the previous slot; None before the first


@dataclass
class TrackMemory:
    """Each track's exponential moving average of its latents, bias-corrected (so after one
    latent it is that latent), zeros before a track's first latent. Fixed size."""

    sums: torch.Tensor  # (B, T, Z)
    weights: torch.Tensor  # (B, T)

    @classmethod
    def empty(cls, batch: int, tracks: int, d_latent: int, like: torch.Tensor) -> TrackMemory:
        return cls(like.new_zeros(batch, tracks, d_latent), like.new_zeros(batch, tracks))

    def read(self, track: torch.Tensor) -> torch.Tensor:
        """track (B,) -> that track's average (B, Z)."""
        rows = torch.arange(len(track), device=track.device)
        return self.sums[rows, track] / self.weights[rows, track].clamp(min=1e-6)[:, None]

    @classmethod
    def averages(cls, latents: torch.Tensor, tracks: torch.Tensor, decay: float, max_tracks: int) -> torch.Tensor:
        """Each slot's own track's average of its earlier latents, slot by slot as generation
        updates it: latents (B, L, Z), track indices (B, L) -> (B, L, Z)."""
        memory = cls.empty(len(latents), max_tracks, latents.shape[-1], latents)
        out = []
        for latent, track in zip(latents.unbind(1), tracks.unbind(1)):
            out.append(memory.read(track))
            memory = memory.write(track, latent, decay)
        return torch.stack(out, dim=1)

    def write(self, track: torch.Tensor, latent: torch.Tensor, decay: float) -> TrackMemory:
        """The memory after `track` (B,) wrote `latent` (B, Z)."""
        rows = torch.arange(len(track), device=track.device)
        sums = self.sums.index_put((rows, track), decay * self.sums[rows, track] + (1 - decay) * latent.to(self.sums.dtype))
        weights = self.weights.index_put((rows, track), decay * self.weights[rows, track] + (1 - decay))
        return TrackMemory(sums, weights)


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
    track_memory_decay: float = 0.0  # per-track moving average of latents: input and mean offset (0 = off)
    min_log_scale: float = -3.0  # mixture components' narrowest log-scale (e^-3 = 0.05)
    temperature: float = 1.0  # the sampling temperature generation uses when none is asked for (`export --temperature`)
    silence_head: bool = False  # a per-slot "silent bar" probability beside the mixture (gmm head only)
    input_noise: float = 0.0  # training only: each window's input latents get noise of std ~ U(0, input_noise); the track memory reads them clean

    @classmethod
    def from_dict(cls, d: dict) -> LatentMambaConfig:
        """Configs saved before `controls_every_slot`, the track memory or the scale floor existed
        run as they were trained: without the first two, with the old floor e^-7."""
        return cls(**{"controls_every_slot": False, "track_memory_decay": 0.0, "min_log_scale": -7.0, **d})

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
        if config.silence_head and config.head != "gmm":
            raise ValueError("a silence head needs the gmm head")
        self.config = c = config
        self.latent_in = nn.Linear(c.d_latent, c.d_model)
        self.memory_in = nn.Linear(c.d_latent, c.d_model) if c.track_memory_decay > 0 else None
        n_gates = c.n_components if c.head == "gmm" else 1
        self.memory_gate = nn.Linear(c.d_model, n_gates) if c.track_memory_decay > 0 else None
        self.track = nn.Embedding(c.max_tracks, c.d_model)
        self.program = nn.Embedding(N_PROGRAMS, c.d_model)
        self.controls = nn.ModuleList(nn.Embedding(n + 1, c.d_model) for n in c.control_sizes)  # 0 = unspecified
        self.control_kind = nn.Parameter(torch.randn(len(CONTROL_NAMES), c.d_model) * 0.02)  # (C, D)
        self.backbone = MambaStack(c.n_layers, c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand)
        if c.head == "gmm":
            self.head = GaussianMixtureHead(c.d_model, c.d_latent, c.n_components, c.min_log_scale)
        else:
            self.head = nn.Linear(c.d_model, c.d_latent)
        self.silence = nn.Linear(c.d_model, 1) if c.silence_head else None

    # ---- inputs --------------------------------------------------------------------
    def control_tokens(self, controls: torch.Tensor) -> torch.Tensor:
        """controls (B, C) class indices, -1 = unspecified -> (B, C, D)."""
        tokens = [emb(controls[:, i] + 1) for i, emb in enumerate(self.controls)]
        return torch.stack(tokens, dim=1) + self.control_kind

    def control_sum(self, control_tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, D) -> (B, D): what every slot adds (zeros for a prefix-only model)."""
        return control_tokens.sum(1) if self.config.controls_every_slot else torch.zeros_like(control_tokens[:, 0])

    def slot_inputs(
        self, previous: torch.Tensor, averages: torch.Tensor | None, tracks: torch.Tensor, programs: torch.Tensor, control_sum: torch.Tensor
    ) -> torch.Tensor:
        """previous slots' latents and the own tracks' averages (B, L, Z; None without the track
        memory), track indices and programs (B, L), summed controls (B, D) -> (B, L, D)."""
        x = self.latent_in(previous) + self.track(tracks) + self.program(programs + 1) + control_sum[:, None]
        return x + self.memory_in(averages) if self.memory_in is not None else x

    def predict(self, h: torch.Tensor, averages: torch.Tensor | None):
        """Head outputs, each mean plus its gated share of the track's average: h (..., D), averages (..., Z).
        With the silence head, the mixture's tuple gains the silence logits (...)."""
        prediction = self.head(h)
        if self.memory_in is not None:
            gates = torch.sigmoid(self.memory_gate(h)).unsqueeze(-1)  # (..., K or 1, 1)
            if self.config.head == "mse":
                return prediction + gates[..., 0, :] * averages
            logits, means, log_scales = prediction
            prediction = logits, means + gates * averages.unsqueeze(-2), log_scales
        return prediction if self.silence is None else (*prediction, self.silence(h)[..., 0])

    def mixture(self, prediction) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The Gaussian mixture's (logits, means, log-scales) of a gmm prediction."""
        return tuple(prediction[:3])

    # ---- training ------------------------------------------------------------------
    def forward(
        self,
        controls: torch.Tensor,  # (B, C)
        latents: torch.Tensor,  # (B, L, Z) targets, in slot order
        tracks: torch.Tensor,  # (B, L)
        programs: torch.Tensor,  # (B, L)
        scan: str = "auto",
    ):
        """Teacher-forced predictions for every slot (head outputs over (B, L)).

        In training, `input_noise` blurs the history the model reads (not the targets): at
        generation it reads its own samples, which miss the codes it learned from."""
        history = latents[:, :-1]
        if self.training and self.config.input_noise > 0:
            std = torch.rand(len(latents), 1, 1, device=latents.device) * self.config.input_noise  # (B, 1, 1)
            history = history + torch.randn_like(history) * std
        previous = F.pad(history, (0, 0, 1, 0))  # (B, L, Z): zeros before the first slot
        averages = None
        if self.memory_in is not None:
            with torch.no_grad():  # latents are data: nothing to backpropagate
                averages = TrackMemory.averages(latents, tracks, self.config.track_memory_decay, self.config.max_tracks)
        control_tokens = self.control_tokens(controls)  # (B, C, D)
        inputs = self.slot_inputs(previous, averages, tracks, programs, self.control_sum(control_tokens))
        h, _ = self.backbone(torch.cat([control_tokens, inputs], dim=1), scan=scan)  # (B, C + L, D)
        return self.predict(h[:, len(CONTROL_NAMES) :], averages)

    def loss(self, prediction, latents: torch.Tensor, mask: torch.Tensor, silent: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over real slots (mask (B, L)) of the NLL in nats per latent dimension, or of the
        squared error. A silence head needs each slot's `silent` flag (B, L)."""
        if self.silence is not None:
            if silent is None:
                raise ValueError("a prior with a silence head needs the slots' silent flags")
            silent_logits = prediction[3].float()  # (B, L)
            sounding = -F.logsigmoid(-silent_logits) + GaussianMixtureHead.nll(self.mixture(prediction), latents) * latents.shape[-1]
            per_slot = torch.where(silent.bool(), -F.logsigmoid(silent_logits), sounding) / latents.shape[-1]
        elif self.config.head == "gmm":
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
        memory = TrackMemory.empty(len(controls), self.config.max_tracks, self.config.d_latent, control_tokens)
        return RecurrentState(layers, self.control_sum(control_tokens), memory)

    @torch.no_grad()
    def step(self, previous: torch.Tensor, track: torch.Tensor, program: torch.Tensor, state: RecurrentState):
        """One slot: previous latent (B, Z), track and program (B,) -> (head output, state)."""
        memory, averages = state.memory, None
        if self.memory_in is not None:
            if state.last_track is not None:  # the previous slot's latent joins its track's average
                memory = memory.write(state.last_track, previous, self.config.track_memory_decay)
            averages = memory.read(track)  # (B, Z)
        x = self.slot_inputs(
            previous[:, None], None if averages is None else averages[:, None], track[:, None], program[:, None], state.control_sum
        )[:, 0]  # (B, D)
        h, layers = self.backbone.step(x, state.layers)
        return self.predict(h, averages), RecurrentState(layers, state.control_sum, memory, track)

    def guide(self, prediction, weight: float):
        """Classifier-free guidance: batch row 0 conditioned, row 1 with every control unspecified
        -> one prediction (batch 1), row 1 + weight * (row 0 - row 1); the mixture keeps row 0's scales."""

        def push(x: torch.Tensor) -> torch.Tensor:
            return x[1:2] + weight * (x[0:1] - x[1:2])

        if self.config.head == "mse":
            return push(prediction)
        logits, means, log_scales = self.mixture(prediction)
        silence = () if self.silence is None else (push(prediction[3]),)
        return push(logits), push(means), log_scales[0:1], *silence

    def sample(self, prediction, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """A latent per row (B, Z); with the silence head, a sounding bar's."""
        if self.config.head == "mse":
            return prediction
        return GaussianMixtureHead.sample(self.mixture(prediction), temperature, generator)

    def silent(self, prediction, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Whether each row's slot is drawn silent (B,): always False without the silence head
        (and no random number is drawn). The logit is divided by the temperature; 0 takes the likelier."""
        if self.silence is None:
            rows = prediction.shape[0] if self.config.head == "mse" else prediction[0].shape[0]
            return torch.zeros(rows, dtype=torch.bool)
        logits = prediction[3].float()
        if temperature <= 0:
            return (logits > 0).cpu()
        u = torch.rand(logits.shape, generator=generator, device=logits.device)
        return (u < torch.sigmoid(logits / temperature)).cpu()
