"""GridCodec: one bar of one track (its note grid) <-> a 64-d Gaussian latent, decoded in one pass.

Encoder: each position of the bar's grid (which pitches start a note there, with their
durations and velocity levels) is projected to the model width, a head token adds the bar's
time signature, program and tempo, a Pre-LN transformer runs over the positions, and each
position's state, cut to a few numbers, keeps its place in one vector that a linear map turns
into (mu, logvar) (pooling the positions learns more slowly: BENCHMARKS.md, "Design probes").
Decoder (non-autoregressive): z is projected to a vector per position, a transformer runs over
the bar's positions, and heads give, for every position and pitch, the logit that a note starts
there and, for each note, its duration class and velocity level (each pitch reads them from its
position's features through a linear map of its own); the time signature, program
and tempo come from z directly. Writing the grid back (`data/bar_grid.py`) cannot give an
ungrammatical bar, and no note starts past the bar's end.

Glossary: B bars, P positions, K pitches (128), D model width, Z latent width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.data.bar_grid import N_PITCHES, N_POSITIONS, NO_NOTE, GridBatch, GridVocabulary
from musemorphic.models.codec_identity import weights_fingerprint
from musemorphic.models.config import JsonConfig
from musemorphic.nn.transformer import Transformer

DRUM_PITCHES = (27, 88)  # the tokenizer's PitchDrum range
ONSET_PRIOR_LOGIT = -5.0  # initial onset logit: about one cell in 150 starts a note


@dataclass
class GridCodecConfig(JsonConfig):
    n_time_signatures: int
    n_programs: int
    n_tempos: int  # tempo classes; index n_tempos = no tempo in the bar
    n_durations: int
    bar_lengths: list[int]  # positions in a bar of each time signature class
    velocity_levels: int = 8
    level_velocities: list[int] = field(default_factory=list)  # the velocity bin each level is written with (empty: its middle bin)
    d_model: int = 128
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    d_latent: int = 64
    d_summary: int = 32  # width each position keeps on its way to the latent
    dropout: float = 0.0
    drum_program: int = 128  # program index of drums (their notes stay in the drum pitch range)


PRESETS = {
    "tiny": dict(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1),
    "small": dict(d_model=128, n_heads=4, n_encoder_layers=2, n_decoder_layers=2),
    "full": dict(d_model=384, n_heads=8, n_encoder_layers=4, n_decoder_layers=4, dropout=0.1),
}


def grid_codec_config(preset: str, vocabulary: GridVocabulary, **overrides) -> GridCodecConfig:
    return GridCodecConfig.from_preset(PRESETS, preset, **{
        "n_time_signatures": len(vocabulary.time_signatures), "n_programs": len(vocabulary.programs),
        "n_tempos": len(vocabulary.tempos), "n_durations": len(vocabulary.durations),
        "bar_lengths": [vocabulary.n_positions[ts] for ts in vocabulary.time_signatures],
        "drum_program": vocabulary.program_index(-1), **overrides,
    })


@dataclass
class GridOutput:
    """The decoder's logits for a batch (teacher-forced bar lengths)."""

    onsets: torch.Tensor  # (B, P, K)
    hidden: torch.Tensor  # (B, P, D) per-position states the note head reads
    time_signatures: torch.Tensor  # (B, n_time_signatures)
    programs: torch.Tensor  # (B, n_programs)
    tempos: torch.Tensor  # (B, n_tempos + 1)


class GridCodec(nn.Module):
    def __init__(self, config: GridCodecConfig):
        super().__init__()
        self.config = c = config
        self.encoder_in = nn.Linear(3 * N_PITCHES, c.d_model)
        self.encoder_positions = nn.Embedding(N_POSITIONS, c.d_model)
        self.time_signature_embedding = nn.Embedding(c.n_time_signatures, c.d_model)
        self.program_embedding = nn.Embedding(c.n_programs, c.d_model)
        self.tempo_embedding = nn.Embedding(c.n_tempos + 1, c.d_model)
        self.encoder = Transformer(c.n_encoder_layers, c.d_model, c.n_heads, c.dropout, sigma_reparam=False)
        self.summary = nn.Linear(c.d_model, c.d_summary)
        self.to_gaussian = nn.Linear((1 + N_POSITIONS) * c.d_summary, 2 * c.d_latent)
        self.latent_to_positions = nn.Linear(c.d_latent, N_POSITIONS * c.d_model)
        self.decoder_positions = nn.Embedding(N_POSITIONS, c.d_model)
        self.decoder = Transformer(c.n_decoder_layers, c.d_model, c.n_heads, c.dropout, sigma_reparam=False)
        self.onset_head = nn.Linear(c.d_model, N_PITCHES)
        nn.init.constant_(self.onset_head.bias, ONSET_PRIOR_LOGIT)
        self.note_features = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, c.d_model), nn.GELU())
        # a readout per pitch: a note's duration and velocity logits are its pitch's own linear map of its position's features
        self.note_readout = nn.Parameter(torch.randn(N_PITCHES, c.n_durations + c.velocity_levels, c.d_model) * c.d_model**-0.5)
        self.note_bias = nn.Parameter(torch.zeros(N_PITCHES, c.n_durations + c.velocity_levels))
        self.bar_head = nn.Sequential(nn.Linear(c.d_latent, c.d_model), nn.GELU(),
                                      nn.Linear(c.d_model, c.n_time_signatures + c.n_programs + c.n_tempos + 1))
        drum_pitch = torch.zeros(N_PITCHES, dtype=torch.bool)
        drum_pitch[DRUM_PITCHES[0] : DRUM_PITCHES[1] + 1] = True
        self.register_buffer("drum_pitch", drum_pitch, persistent=False)
        self.register_buffer("bar_lengths", torch.tensor(c.bar_lengths), persistent=False)

    def forward(self, grid: GridBatch, sample: bool = True, decoder_noise: float = 0.0) -> tuple[GridOutput, torch.Tensor, torch.Tensor]:
        """Training pass: the decoder's logits for z ~ q(z|grid) (its mean unless `sample`), plus
        isotropic noise of a std drawn per bar in [0, decoder_noise]; mu, logvar (B, Z)."""
        mu, logvar = self.encode(grid)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        if decoder_noise > 0:
            z = z + torch.randn_like(z) * torch.rand_like(z[:, :1]) * decoder_noise
        return self.decode(z, grid.lengths), mu, logvar

    def freeze_encoder(self) -> None:
        """Train the decoder only: every bar keeps exactly its code (and a prior trained on the codes stays valid)."""
        for module in self.encoder_side():
            module.requires_grad_(False)

    # ---- encoder -------------------------------------------------------------------
    def encode(self, grid: GridBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """A GridBatch -> mu, logvar (B, Z)."""
        c = self.config
        B, P, _ = grid.onsets.shape
        duration = (grid.durations + 1).float() / c.n_durations  # 0 where no note
        velocity = (grid.velocities + 1).float() / c.velocity_levels
        x = self.encoder_in(torch.cat([grid.onsets, duration, velocity], dim=-1))  # (B, P, D)
        x = x + self.encoder_positions.weight[:P]
        head = (self.time_signature_embedding(grid.time_signatures) + self.program_embedding(grid.programs)
                + self.tempo_embedding(grid.tempos))[:, None]  # (B, 1, D)
        real = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=x.device), self.position_mask(grid.lengths, P)], dim=1)
        h = self.encoder(torch.cat([head, x], dim=1), key_padding_mask=real)  # (B, 1 + P, D)
        s = self.summary(h) * real[..., None]  # (B, 1 + P, S): nothing from past the bar's end
        s = F.pad(s, (0, 0, 0, N_POSITIONS - P))  # (B, 1 + N_POSITIONS, S): every position keeps its own place
        mu, logvar = self.to_gaussian(s.flatten(1)).chunk(2, dim=-1)
        return mu, logvar

    # ---- decoder -------------------------------------------------------------------
    def decode(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> GridOutput:
        """Logits for latents z (B, Z); positions beyond each bar's length (`lengths` (B,), by
        default those of the time signatures z predicts) get onset logits of -inf."""
        c = self.config
        bar = self.bar_head(z)  # (B, n_ts + n_programs + n_tempos + 1)
        time_signatures, programs, tempos = bar.split([c.n_time_signatures, c.n_programs, c.n_tempos + 1], dim=-1)
        if lengths is None:
            lengths = self.bar_lengths[time_signatures.argmax(-1)]
        P = int(lengths.max()) if len(lengths) else 1
        x = self.latent_to_positions(z).view(len(z), N_POSITIONS, c.d_model)[:, :P] + self.decoder_positions.weight[:P]
        inside = self.position_mask(lengths, P)  # (B, P)
        h = self.decoder(x, key_padding_mask=inside)  # (B, P, D)
        onsets = self.onset_head(h).masked_fill(~inside[..., None], float("-inf"))  # (B, P, K)
        return GridOutput(onsets, h, time_signatures, programs, tempos)

    def note_logits(self, hidden: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor,
                    pitches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Duration (N, n_durations) and velocity-level (N, levels) logits of N notes."""
        features = self.note_features(hidden[rows, positions])  # (N, D)
        out = torch.einsum("nd,ncd->nc", features, self.note_readout[pitches]) + self.note_bias[pitches]  # (N, n_durations + levels)
        return out.split([self.config.n_durations, self.config.velocity_levels], dim=-1)

    @staticmethod
    def position_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
        """(B, width) True at the positions inside each bar."""
        return torch.arange(width, device=lengths.device)[None] < lengths[:, None]

    # ---- training ------------------------------------------------------------------
    def reconstruction(self, out: GridOutput, grid: GridBatch) -> dict[str, torch.Tensor]:
        """Negative log-likelihoods per bar (summed over its cells and notes), averaged over the batch."""
        B = len(grid.lengths)
        inside = self.position_mask(grid.lengths, grid.onsets.shape[1])[..., None].expand_as(grid.onsets)
        onset = F.binary_cross_entropy_with_logits(out.onsets[inside], grid.onsets[inside], reduction="sum") / B
        rows, positions, pitches = torch.nonzero(grid.durations != NO_NOTE, as_tuple=True)
        duration_logits, velocity_logits = self.note_logits(out.hidden, rows, positions, pitches)
        duration = F.cross_entropy(duration_logits, grid.durations[rows, positions, pitches], reduction="sum") / B
        velocity = F.cross_entropy(velocity_logits, grid.velocities[rows, positions, pitches], reduction="sum") / B
        heads = (F.cross_entropy(out.time_signatures, grid.time_signatures) + F.cross_entropy(out.programs, grid.programs)
                 + F.cross_entropy(out.tempos, grid.tempos))
        return {"onset": onset, "duration": duration, "velocity": velocity, "bar": heads}

    # ---- generation ----------------------------------------------------------------
    @torch.no_grad()
    def write(self, z: torch.Tensor, pitch_bias: torch.Tensor | None = None, programs: torch.Tensor | None = None,
              must_sound: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]]:
        """Greedy decoding of latents (B, Z): per bar its onset, duration and velocity grids
        (P, K) and its time signature, program and tempo classes. `pitch_bias` (K,) is added to
        every onset logit of a pitched bar (drum bars keep theirs); `programs` (B,) overrides the programs z predicts; with `must_sound`,
        a bar with no onset above even odds gets its likeliest one."""
        out = self.decode(z)
        program = out.programs.argmax(-1) if programs is None else programs
        drums = program == self.config.drum_program
        onsets = out.onsets if pitch_bias is None else out.onsets + pitch_bias * (~drums)[:, None, None]  # drum notes keep theirs
        onsets = onsets.masked_fill(drums[:, None, None] & ~self.drum_pitch, float("-inf"))
        notes = onsets > 0  # (B, P, K)
        if must_sound:
            silent = ~notes.flatten(1).any(-1)
            best = onsets.flatten(1).argmax(-1)
            notes.view(len(z), -1)[silent, best[silent]] = True
        rows, positions, pitches = torch.nonzero(notes, as_tuple=True)
        duration_logits, velocity_logits = self.note_logits(out.hidden, rows, positions, pitches)
        durations = torch.full(notes.shape, NO_NOTE, dtype=torch.long, device=z.device)
        velocities = torch.full(notes.shape, NO_NOTE, dtype=torch.long, device=z.device)
        durations[rows, positions, pitches] = duration_logits.argmax(-1)
        velocities[rows, positions, pitches] = velocity_logits.argmax(-1)
        return [
            (n, d, v, int(ts), int(p), int(t))
            for n, d, v, ts, p, t in zip(notes.cpu().numpy(), durations.cpu().numpy(), velocities.cpu().numpy(),
                                         out.time_signatures.argmax(-1).tolist(), program.tolist(), out.tempos.argmax(-1).tolist())
        ]

    # ---- identity ------------------------------------------------------------------
    def encoder_side(self) -> tuple[nn.Module, ...]:
        return (self.encoder_in, self.encoder_positions, self.time_signature_embedding, self.program_embedding,
                self.tempo_embedding, self.encoder, self.summary, self.to_gaussian)

    def code_fingerprint(self) -> str:
        """What a prior learned: the encoder side's weights."""
        return weights_fingerprint(self.encoder_side())

    def decoding_fingerprint(self) -> str:
        """What a critic learned: every weight."""
        return weights_fingerprint([self])
