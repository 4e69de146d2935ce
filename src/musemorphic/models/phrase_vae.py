"""PhraseVAE: one bar of one track (BPE'd REMI+ tokens) <-> a 64-d Gaussian latent.

Seed 000, section 3.3. A phrase is the sequence `Program_p  bar tokens...  EOS`.
Encoder: token embedding + FME music features + learned positions -> Pre-LN transformer
-> multi-query bottleneck -> (mu, logvar). Decoder: autoregressive Pre-LN transformer over
`BOS Program_p bar tokens...`, with z projected and added to every input position (so the
decoder cannot ignore it), and a KV cache for generation.

Glossary: B batch, T tokens, D model width, Z latent width, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.models.codec_identity import weights_fingerprint
from musemorphic.models.config import JsonConfig
from musemorphic.nn.bottleneck import QueryBottleneck
from musemorphic.nn.fme import MusicFeatureEmbedding
from musemorphic.nn.transformer import KVCache, Transformer


@dataclass
class PhraseVAEConfig(JsonConfig):
    vocab_size: int
    d_model: int = 192
    n_heads: int = 4
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    d_latent: int = 64
    n_queries: int = 4
    max_len: int = 160  # Program + phrase + EOS
    dropout: float = 0.1
    label_smoothing: float = 0.1
    sigma_reparam: bool = True
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    mask_id: int = 3


PRESETS = {
    "tiny": dict(d_model=64, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0),
    "small": dict(d_model=192, n_heads=4, n_encoder_layers=3, n_decoder_layers=3, dropout=0.0),  # under 2 epochs an hour here: little to overfit
    "full": dict(d_model=512, n_heads=8, n_encoder_layers=3, n_decoder_layers=3),
}


def phrase_vae_config(preset: str, **overrides) -> PhraseVAEConfig:
    return PhraseVAEConfig.from_preset(PRESETS, preset, **overrides)


class TokenEmbedding(nn.Module):
    """Learned token embedding + FME features of the token's pitch/duration/onset + positions."""

    def __init__(self, config: PhraseVAEConfig, music_features: torch.Tensor):
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.music = MusicFeatureEmbedding(music_features, config.d_model)
        self.positions = nn.Embedding(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:  # (B, T) -> (B, T, D)
        pos = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        return self.dropout(self.tokens(ids) + self.music(ids) + self.positions(pos))


class PhraseVAE(nn.Module):
    def __init__(self, config: PhraseVAEConfig, music_features: torch.Tensor):
        super().__init__()
        if music_features.shape != (config.vocab_size, 3):
            raise ValueError(f"music_features must be ({config.vocab_size}, 3), got {tuple(music_features.shape)}")
        self.config = config
        c = config
        self.encoder_embedding = TokenEmbedding(c, music_features)
        self.encoder = Transformer(c.n_encoder_layers, c.d_model, c.n_heads, c.dropout, c.sigma_reparam)
        self.bottleneck = QueryBottleneck(c.d_model, c.n_heads, c.n_queries, c.d_latent, c.sigma_reparam)
        self.decoder_embedding = TokenEmbedding(c, music_features)
        self.latent_to_decoder = nn.Linear(c.d_latent, c.d_model)
        self.decoder = Transformer(c.n_decoder_layers, c.d_model, c.n_heads, c.dropout, c.sigma_reparam)
        self.head = nn.Linear(c.d_model, c.vocab_size)
        self.encoder_frozen = False

    def forward(
        self, ids: torch.Tensor, encoder_ids: torch.Tensor | None = None, sample: bool = False, decoder_noise: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced pass: ids (B, T) -> logits (B, T, V), mu, logvar (B, Z).

        `encoder_ids` lets the encoder see a corrupted copy (span infilling); `sample` draws
        z ~ q(z|x) instead of taking its mean; `decoder_noise` adds isotropic noise to the
        decoder's z with a std drawn per row uniformly in [0, decoder_noise].
        """
        mu, logvar = self.encode(ids if encoder_ids is None else encoder_ids)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        if decoder_noise > 0:
            z = z + torch.randn_like(z) * torch.rand_like(z[:, :1]) * decoder_noise
        return self.decode_logits(z, self.decoder_inputs(ids)), mu, logvar

    def encoder_side(self) -> tuple[nn.Module, ...]:
        """The modules that map a phrase to (mu, logvar)."""
        return self.encoder_embedding, self.encoder, self.bottleneck

    def code_fingerprint(self) -> str:
        """What a prior learned: the encoder side's weights (`weights_fingerprint`). A
        decoder-only fine-tune and an fp16 export keep it."""
        return weights_fingerprint(self.encoder_side())

    def decoding_fingerprint(self) -> str:
        """What a critic learned: every weight, since it predicts what the decoder writes from
        the encoder's codes."""
        return weights_fingerprint([self])

    def freeze_encoder(self) -> None:
        """Train the decoder only: the encoder side gets no gradients and stays in eval mode
        (no dropout, no power iterations), so every phrase keeps exactly its code."""
        self.encoder_frozen = True
        for module in self.encoder_side():
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> PhraseVAE:
        super().train(mode)
        if self.encoder_frozen:
            for module in self.encoder_side():
                module.eval()
        return self

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) phrase ids (PAD-padded) -> mu, logvar (B, Z)."""
        real = ids != self.config.pad_id  # (B, T)
        h = self.encoder(self.encoder_embedding(ids), causal=False, key_padding_mask=real)  # (B, T, D)
        return self.bottleneck(h, key_padding_mask=real)

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Teacher-forced (or cached, one step at a time) logits: z (B, Z), inputs (B, T) -> (B, T, V)."""
        offset = cache.length if cache is not None else 0
        x = self.decoder_embedding(inputs, offset) + self.latent_to_decoder(z)[:, None, :]  # (B, T, D)
        return self.head(self.decoder(x, causal=True, cache=cache))

    def decoder_inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """`BOS` + ids[:, :-1]: the shifted decoder input for target ids (B, T)."""
        bos = torch.full_like(ids[:, :1], self.config.bos_id)
        return torch.cat([bos, ids[:, :-1]], dim=1)

    def reconstruction_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.flatten(0, 1).float(),
            targets.flatten(),
            ignore_index=self.config.pad_id,
            label_smoothing=self.config.label_smoothing,
        )

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,  # (B, Z)
        temperature: float = 0.0,
        max_len: int | None = None,
        uniforms: torch.Tensor | None = None,  # (B, >= max_len) in [0, 1): one draw per row and step
        logit_bias: torch.Tensor | None = None,  # (V,) added to every step's logits
        top_p: float = 1.0,
        token_groups: torch.Tensor | None = None,  # (V,) group id of every token
        note_ends: torch.Tensor | None = None,  # (V,) bool: the tokens that complete a note
    ) -> list[list[int]]:
        """Decode phrases from latents with the KV cache; greedy when temperature == 0.

        At a temperature above 0 each step's token is drawn from the smallest set of most
        likely tokens whose probability reaches `top_p` (the nucleus; 1: every token), by
        inverse CDF from that row's `uniforms` (torch's global generator when None), so a
        row's phrase does not depend on the rows decoded beside it. With `token_groups`, a
        step draws only among the tokens in the greedy token's group (`pitch_groups`: the
        tokens that differ from it in their pitches alone). With `note_ends`, EOS is barred
        until a row has completed a note (a bar that must sound). A row leaves the batch (and the
        cache) as soon as it emits EOS, so a batch costs what its phrases cost rather than its
        longest phrase times the batch size. Returns one id list per latent, without the final
        EOS (cut at max_len).
        """
        c = self.config
        if len(z) == 0:
            return []
        max_len = min(max_len or c.max_len, c.max_len)
        if temperature > 0 and uniforms is None:
            uniforms = torch.rand(z.shape[0], max_len, dtype=torch.float64)
        if uniforms is not None and (uniforms.shape[0] != z.shape[0] or uniforms.shape[1] < max_len):
            raise ValueError(f"uniforms must be ({z.shape[0]}, >= {max_len}), got {tuple(uniforms.shape)}")
        cache = KVCache()
        rows = torch.arange(z.shape[0], device=z.device)  # original index of each active row
        out = torch.full((z.shape[0], max_len), c.pad_id, dtype=torch.long, device=z.device)
        step_input = torch.full((z.shape[0], 1), c.bos_id, dtype=torch.long, device=z.device)
        silent = torch.full((z.shape[0],), note_ends is not None, device=z.device)  # (B_active,) no note completed yet
        for t in range(max_len):
            logits = self.decode_logits(z, step_input, cache)[:, -1].float()  # (B_active, V)
            if logit_bias is not None:
                logits = logits + logit_bias
            logits[:, c.pad_id] = float("-inf")
            logits[silent, c.eos_id] = float("-inf")
            if temperature > 0:
                if token_groups is not None:
                    greedy_group = token_groups[logits.argmax(dim=-1)]  # (B_active,)
                    logits = logits.masked_fill(token_groups[None, :] != greedy_group[:, None], float("-inf"))
                next_id = inverse_cdf_sample(nucleus(logits / temperature, top_p), uniforms[rows.cpu(), t].to(z.device))
            else:
                next_id = logits.argmax(dim=-1)
            out[rows, t] = next_id
            if note_ends is not None:
                silent = silent & ~note_ends[next_id]
            running = next_id != c.eos_id  # (B_active,)
            if not running.all():
                if not running.any():
                    break
                cache.keep(running)
                z, rows, next_id, silent = z[running], rows[running], next_id[running], silent[running]
            step_input = next_id[:, None]
        return [row[: row.index(c.eos_id)] if c.eos_id in row else row for row in out.tolist()]


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits (B, V) with every token outside the top-p nucleus set to -inf: the most likely
    tokens are kept until their probability reaches top_p (at least one is always kept)."""
    if top_p >= 1:
        return logits
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)  # (B, V)
    outside = probs.cumsum(dim=-1) - probs >= top_p  # the nucleus was full before this token
    return logits.masked_fill(outside.scatter(1, order, outside), float("-inf"))


def inverse_cdf_sample(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row of logits (B, V) from uniforms u (B,) in [0, 1): the first token whose
    cumulative probability exceeds u. Never a token of probability 0."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1)  # (B, V)
    target = u.double() * cdf[:, -1] * (1 - 1e-9)  # strictly below the total, so the search stops at a token with mass
    return torch.searchsorted(cdf, target[:, None], right=True)[:, 0]


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over the batch: (B, Z) -> (Z,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(dim=0)
