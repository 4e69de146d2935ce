"""Music from a prior and a codec: unconditional, controlled, continued, endless.

The prior runs in recurrent mode: its state has a fixed size, and nothing generated is
kept once written, so a run of any length uses the same memory. Every bar is drawn slot by
slot (track by track). The codec decodes about `decode_phrases` latents per batch, in chunks of
`max(1, decode_phrases // tracks)` bars. A GridCodec writes each chunk greedily in one pass,
each bar for its track's program. An autoregressive PhraseVAE decodes token by token
(on a CPU the cost of a decoding step grows far more slowly than its rows, so one track gets
long chunks), row by row: by default its pitches are sampled, among those in the scale the prior composes in (any pitch
when no key is known), and the rest is greedy (`draw_groups`), from each slot's own seeded
draws, so the chunk size changes the speed, not the music (tests/test_generation.py checks
it). The notes go to a `StreamingMidiWriter` that makes the file valid after every write.
With a PhraseCritic, a requested density or key also steers the sampling (`steering.py`):
each slot keeps the best of `candidates` draws from the prior, and bars are decoded one at a
time so the steering learns what each really wrote. A critic that predicts onset grids also
steers each track's rhythm, by default: of `groove_draws` draws it keeps the one whose onsets
differ from the track's previous bar's in the share of cells nearest `groove_distance`
(BENCHMARKS.md, "Groove steering"). A scale lock (`scale_lock.py`) makes the decoder lean
away from notes outside that scale; by default it remembers the chromatic pitch classes of
the last bars and welcomes them back, so it guards only the first bar a new one would sound
in: it hears each bar as it is written, and a chunk decoded ahead is decoded again from a bar
that changes what it remembers, so the notes are those of decoding bar by bar. With a silence-head prior, the
prior alone decides which slots are silent: a slot it draws sounding is decoded with its end
barred until a note is complete (`note_ends`), where the codec would otherwise write some of
those draws as empty bars (BENCHMARKS.md, "Sounding draws").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from miditok.utils import get_bars_ticks

from musemorphic.data import controls as ctl
from musemorphic.data.augment import AugmentConfig, Augmenter
from musemorphic.data.key_frame import MAJOR_TONIC, normalized_key, normalizing_shift
from musemorphic.data.midi_io import load_score
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.data.bar_timing import bar_ticks, first_tempo
from musemorphic.generation.midi_writer import StreamingMidiWriter
from musemorphic.generation.phrase_codec import decode_bars, encode_bars, note_ends, pitch_groups
from musemorphic.generation.scale_lock import ScaleLock, outside_notes, pitch_class_notes
from musemorphic.generation.steering import ControlSteering, SteeringTarget, density_target
from musemorphic.generation.written_notes import TPQ, bar_cells, fits_track, onset_cells, phrase_facts, sounded_classes, written_notes
from musemorphic.models.latent_mamba import LatentMamba
from musemorphic.models.phrase_critic import PhraseCritic
from musemorphic.models.codec_identity import learned_from
from musemorphic.models.grid_codec import GridCodec
from musemorphic.models.phrase_vae import PhraseVAE
from musemorphic.training.latent_mamba import SongControlsEncoder, load_latent_mamba
from musemorphic.training.phrase_critic import load_phrase_critic
from musemorphic.training.grid_codec import load_codec

DEFAULT_TEMPO = 120.0
# How the codec writes a latent's bar by default, chosen with the shipped models against the
# validation songs (BENCHMARKS.md, "Pitches drawn inside the scale" and, for top-p 0.9 with
# groove steering, "Groove steering"): pitches drawn from the decoder's top-0.9 nucleus among
# those in the scale, every other token greedy. Temperature 0 decodes greedily.
DECODE_TEMPERATURE, DECODE_TOP_P, DECODE_SAMPLED = 1.0, 0.9, "scale-pitches"
DECODE_SAMPLED_CHOICES = ("all", "pitches", "scale-pitches")
# The scale lock (scale_lock.py), chosen the same way (BENCHMARKS.md, "A scale lock with memory"):
# 0.25 nats per note of a chromatic pitch class no track sounded in the last 8 bars, +0.5 per
# note of one that some track did.
SCALE_LOCK, SCALE_LOCK_MEMORY, SCALE_LOCK_WELCOME = 0.25, 8, 0.5
# Groove steering: prior draws per slot it chooses from when nothing else is steered (1: off),
# and the distance from each track's previous bar's onset grid it aims at (a share of the grid's
# cells), chosen with the shipped models against the validation songs (BENCHMARKS.md, "Groove steering").
GROOVE_DRAWS, GROOVE_DISTANCE = 8, 0.125


@dataclass
class Request:
    """What to generate. Controls left as None are unspecified (the model chooses)."""

    bars: int | None = 32  # None: until interrupted
    tempo: str | None = None  # BPM ("96") or a tempo class name
    key: str | None = None  # "D minor", "F#", ...
    time_signature: str | None = None  # "3/4"
    density: str | None = None  # low, medium, high
    style: str | None = None
    programs: list[int] | None = None  # track layout; default: the prior's most common one
    prompt: Path | None = None  # a MIDI file to continue (the output holds the new bars only)
    temperature: float | None = None  # None: the prior's own (its config's `temperature`)
    guidance: float = 1.0  # classifier-free guidance weight for the controls (1 = plain conditioning)
    seed: int = 0


@dataclass
class GeneratedBar:
    index: int
    time_signature: tuple[int, int]
    phrases: list[list[int]]  # base ids per track, starting with Bar
    invalid_tracks: list[int] = field(default_factory=list)  # ungrammatical (with salvage: nothing to keep) or of the wrong kind: silent


@dataclass
class Layout:
    """What a request resolves to before any bar is drawn."""

    programs: list[int]  # one per track
    prompt_latents: torch.Tensor | None  # (n_bars, n_tracks, Z) in the prior's key frame, when continuing
    shift: int  # semitones from the prior's key frame to the output
    prompt_tempo: float | None  # BPM
    time_signature: tuple[int, int] | None  # the prompt's last bar's
    frame_key: int  # the key the prior writes in (-1: unknown), which a scale lock keeps to
    prompt_bars: list[list[list[int]]] | None = None  # the prompt's bars moved as its latents were, base ids per track: what to go on from
    prompt_in_key: bool = False  # whether those bars are in the frame key's scale (a scale lock then hears them)


class MusicGenerator:
    def __init__(
        self,
        codec: PhraseVAE | GridCodec,
        tokenizer: PhraseTokenizer,
        prior: LatentMamba,
        default_programs: list[int],
        decode_phrases: int = 48,
        critic: PhraseCritic | None = None,
        candidates: int = 8,
        scale_lock: float = SCALE_LOCK,
        salvage: bool = True,
        decode_temperature: float = DECODE_TEMPERATURE,
        decode_top_p: float = DECODE_TOP_P,
        decode_sampled: str = DECODE_SAMPLED,
        groove_draws: int = GROOVE_DRAWS,
        groove_distance: float = GROOVE_DISTANCE,
        scale_lock_memory: int = SCALE_LOCK_MEMORY,
        scale_lock_welcome: float = SCALE_LOCK_WELCOME,
    ):
        self.codec, self.tokenizer, self.prior = codec.eval(), tokenizer, prior.eval()
        self.default_programs = default_programs
        if decode_phrases < 1:
            raise ValueError(f"decode_phrases must be at least 1, got {decode_phrases}")
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        self.decode_phrases = decode_phrases  # phrases per codec batch (whole bars, at least one)
        self.device = next(prior.parameters()).device
        self.critic = critic.to(self.device).eval() if critic is not None else None  # steers density, key and rhythm
        self.candidates = candidates  # prior draws per slot the critic chooses from for a density or key
        if groove_draws < 1:
            raise ValueError(f"groove_draws must be at least 1, got {groove_draws}")
        self.groove_draws = groove_draws  # prior draws per slot groove steering alone chooses from (1: off)
        if not 0 <= groove_distance <= 1:
            raise ValueError(f"groove_distance must be in [0, 1], got {groove_distance}")
        self.groove_distance = groove_distance  # the share of grid cells aimed at changing from a track's last bar
        if scale_lock < 0:
            raise ValueError(f"scale_lock must be at least 0, got {scale_lock}")
        self.scale_lock = scale_lock  # nats off the decoder's logits per note outside the scale (scale_lock.py)
        if scale_lock_memory < 0:
            raise ValueError(f"scale_lock_memory must be at least 0, got {scale_lock_memory}")
        self.scale_lock_memory = scale_lock_memory  # bars a chromatic pitch class stays free of the lock once sounded
        if scale_lock_welcome < 0:
            raise ValueError(f"scale_lock_welcome must be at least 0, got {scale_lock_welcome}")
        self.scale_lock_welcome = scale_lock_welcome  # nats added per note of a chromatic pitch class heard in that memory
        if decode_temperature < 0:
            raise ValueError(f"decode_temperature must be at least 0, got {decode_temperature}")
        self.decode_temperature = decode_temperature  # the codec's: 0 decodes greedily
        if not 0 < decode_top_p <= 1:
            raise ValueError(f"decode_top_p must be in (0, 1], got {decode_top_p}")
        self.decode_top_p = decode_top_p  # the nucleus sampled decoding draws from
        if decode_sampled not in DECODE_SAMPLED_CHOICES:
            raise ValueError(f"decode_sampled must be one of {DECODE_SAMPLED_CHOICES}, got {decode_sampled!r}")
        # which tokens sampled decoding draws: all; pitches alone (the rest greedy); or pitches alone, in the scale only
        self.decode_sampled = decode_sampled
        self._token_groups: dict[int, torch.Tensor] = {}  # frame key (-1: none) -> (V,), `draw_groups`
        self._pitch_class_notes: torch.Tensor | None = None  # (V, 12), for the scale lock
        # a prior with a silence head has decided which slots sound: the codec may not write those silent
        self._note_ends = note_ends(tokenizer) if prior.config.silence_head else None  # (V,) bool
        self.salvage = salvage  # an ungrammatical bar keeps its complete notes before the first fault instead of falling silent
        self.mover = Augmenter(tokenizer, AugmentConfig())  # transposes phrases in and out of the key frame
        self._empty_codes: dict[tuple[int, tuple[int, int]], torch.Tensor] = {}  # (program, time signature) -> (Z,)

    @classmethod
    def load(
        cls,
        codec_dir: str | Path,
        prior_dir: str | Path,
        critic_dir: str | Path | None = None,
        device: str = "cpu",
        decode_phrases: int = 48,
        candidates: int = 8,
        scale_lock: float = SCALE_LOCK,
        salvage: bool = True,
        decode_temperature: float = DECODE_TEMPERATURE,
        decode_top_p: float = DECODE_TOP_P,
        decode_sampled: str = DECODE_SAMPLED,
        groove_draws: int = GROOVE_DRAWS,
        groove_distance: float = GROOVE_DISTANCE,
        scale_lock_memory: int = SCALE_LOCK_MEMORY,
        scale_lock_welcome: float = SCALE_LOCK_WELCOME,
    ) -> MusicGenerator:
        """Codec, prior and (optional) critic from their checkpoint folders; the prior and the
        critic record which codec they learned."""
        codec, tokenizer = load_codec(codec_dir)
        prior, record = load_latent_mamba(prior_dir)
        if not learned_from(record, codec):
            raise ValueError(f"{prior_dir} was trained on the latents of another codec than {codec_dir}")
        critic = None
        if critic_dir is not None:
            critic, critic_record = load_phrase_critic(critic_dir)
            if not learned_from(critic_record, codec):
                raise ValueError(f"{critic_dir} was trained on the decodings of another codec than {codec_dir}")
        return cls(
            codec.to(device), tokenizer, prior.to(device), record["default_programs"], decode_phrases, critic, candidates, scale_lock, salvage,
            decode_temperature, decode_top_p, decode_sampled, groove_draws, groove_distance, scale_lock_memory,
            scale_lock_welcome,
        )

    # ---- controls ------------------------------------------------------------------
    def control_classes(self, request: Request) -> list[int]:
        """The prior's control classes for a request (-1 = unspecified); ValueError names a bad one."""
        time_signature = None
        if request.time_signature is not None:
            time_signature = "/".join(map(str, ctl.parse_time_signature(request.time_signature)))
            if time_signature not in self.prior.config.time_signatures:
                raise ValueError(f"time signature {time_signature} is not one the model knows: {self.prior.config.time_signatures}")
        if request.style is not None and request.style not in self.prior.config.styles:
            raise ValueError(f"style {request.style!r} is not one the model knows: {self.prior.config.styles}")
        key = ctl.parse_key(request.key) if request.key else -1
        return SongControlsEncoder(self.prior.config).encode(
            requested_bpm(request.tempo),
            normalized_key(key) if self.prior.config.key_normalized else key,
            time_signature,
            ctl.parse_density(request.density) if request.density else -1,
            request.style,
        )

    def steering(self, request: Request, n_tracks: int, bar_quarters: float = 4.0) -> ControlSteering | None:
        """The steering for a request, or None when there is nothing to steer: no critic, an
        MSE-head prior, a temperature of 0 (every draw the same), or neither a density nor a key
        requested (or one candidate) and no groove steering (a critic without onset grids, or
        one groove draw)."""
        if self.critic is None or self.prior.config.head != "gmm" or self.temperature(request) <= 0:
            return None
        controls = self.candidates > 1 and bool(request.density or request.key)
        groove = self.groove_draws > 1 and self.critic.config.onset_cells > 0
        if not (controls or groove):
            return None
        target = SteeringTarget(groove=groove, groove_distance=self.groove_distance if groove else 0.0)
        if controls and request.key:
            key = ctl.parse_key(request.key)
            target.key = normalized_key(key) if self.prior.config.key_normalized else key
        if controls and request.density:
            target.density = density_target(ctl.parse_density(request.density), tuple(self.critic.config.density_thresholds))
        return ControlSteering(self.critic, target, n_tracks, bar_quarters)

    def draws_per_slot(self, steering: ControlSteering) -> int:
        """Prior draws per slot for a steering: `candidates` for a density or key, else `groove_draws`."""
        controls = steering.target.density is not None or steering.target.key is not None
        return self.candidates if controls else self.groove_draws

    def temperature(self, request: Request) -> float:
        """The prior's sampling temperature for a request: the requested one, else the prior's own."""
        return self.prior.config.temperature if request.temperature is None else request.temperature

    def draw_groups(self, frame_key: int) -> torch.Tensor | None:
        """(V,) the token groups a sampled decoding draws within (`PhraseVAE.generate`), or None
        (every token): with "scale-pitches", a token that writes a note outside the frame key's
        scale is a group of its own, so it is written only where greedy decoding writes it and
        draws vary pitches inside the scale (as "pitches" when no key is known, -1)."""
        if self.decode_sampled == "all":
            return None
        key = frame_key if self.decode_sampled == "scale-pitches" else -1
        if key not in self._token_groups:
            apart = None if key == -1 else outside_notes(self._class_notes(), ctl.scale_pitch_classes(key)) > 0
            self._token_groups[key] = pitch_groups(self.tokenizer, apart)
        return self._token_groups[key]

    def new_scale_lock(self, frame_key: int) -> ScaleLock | None:
        """A fresh scale lock for the key the prior writes in (a `Layout`'s frame_key), or
        None: a lock that would change nothing, or no key known (-1)."""
        welcomes = self.scale_lock_welcome > 0 and self.scale_lock_memory > 0
        if frame_key == -1 or (self.scale_lock == 0 and not welcomes):
            return None
        return ScaleLock(self._class_notes(), ctl.scale_pitch_classes(frame_key), self.scale_lock, self.scale_lock_memory,
                         self.scale_lock_welcome)

    def _class_notes(self) -> torch.Tensor:
        """(V, 12) `pitch_class_notes` of the tokenizer (cached)."""
        if self._pitch_class_notes is None:
            self._pitch_class_notes = pitch_class_notes(self.tokenizer)
        return self._pitch_class_notes

    def bars_per_decode(self, n_tracks: int, steered: bool) -> int:
        """Bars the prior draws ahead of the codec: one where steering settles bar by bar, else
        `bars_per_batch` (decoded together, and again from a bar where a scale lock hears a change)."""
        return 1 if steered else self.bars_per_batch(n_tracks)

    # ---- bars ----------------------------------------------------------------------
    def bars(self, request: Request) -> Iterator[GeneratedBar]:
        """Generated bars, one at a time, forever when request.bars is None."""
        return self._bars(request, self.layout(request))

    def layout(self, request: Request) -> Layout:
        """What a request resolves to before any bar is drawn (the prompt is read and encoded here)."""
        if request.prompt is None:
            programs, latents, prompt_key, prompt_tempo, prompt_ts = request.programs or self.default_programs, None, None, None, None
            prompt_bars = None
        else:
            latents, programs, prompt_key, prompt_tempo, prompt_ts, prompt_bars = self._prompt_latents(request.prompt)
        frame_key = self._frame_key(request, prompt_key)
        return Layout(programs, latents, self._output_shift(request, prompt_key), prompt_tempo, prompt_ts, frame_key, prompt_bars,
                      self._in_frame_scale(prompt_key, frame_key))

    def _in_frame_scale(self, prompt_key: int | None, frame_key: int) -> bool:
        """Whether a prompt of `prompt_key`, as the prior reads it, is in the frame key's scale: not
        so when another key is requested from a prior that is not key-normalised, and the prompt's
        chromatic notes would then pull towards its own key."""
        if prompt_key in (None, -1) or frame_key == -1:
            return False
        heard = normalized_key(prompt_key) if self.prior.config.key_normalized else prompt_key
        return ctl.scale_pitch_classes(heard) == ctl.scale_pitch_classes(frame_key)

    def _frame_key(self, request: Request, prompt_key: int | None) -> int:
        """The key the prior writes in (-1: unknown) for a request and its prompt's key (None: no prompt)."""
        if self.prior.config.key_normalized:
            # C major (or its relative A minor): the frame every output key is moved from. A prompt of
            # unknown key stays as it is, so it has no scale to lock to, unless a key is requested
            # (the output is then moved from C major like any other; `_output_shift`).
            return -1 if prompt_key == -1 and not request.key else MAJOR_TONIC
        return ctl.parse_key(request.key) if request.key else (-1 if prompt_key is None else prompt_key)

    def _output_shift(self, request: Request, prompt_key: int | None) -> int:
        """0 unless the prior is key-normalised; then to the requested key, else the prompt's,
        else a seeded random one."""
        if not self.prior.config.key_normalized:
            return 0
        if request.key:
            return -normalizing_shift(ctl.parse_key(request.key))
        if prompt_key is not None:
            return -normalizing_shift(prompt_key)
        return int(np.random.default_rng([request.seed, 1]).integers(-5, 7))

    @torch.no_grad()
    def _bars(self, request: Request, layout: Layout) -> Iterator[GeneratedBar]:
        programs, prompt_latents, shift = layout.programs, layout.prompt_latents, layout.shift
        generator = torch.Generator(device=self.device).manual_seed(request.seed)
        temperature = self.temperature(request)
        classes = self.control_classes(request)
        guided = request.guidance != 1.0 and any(c != -1 for c in classes)
        rows = [classes, [-1] * len(classes)] if guided else [classes]  # guided: conditioned + unconditioned rows
        states = self.prior.start(torch.tensor(rows, device=self.device))
        previous = torch.zeros(len(rows), self.prior.config.d_latent, device=self.device)
        for bar in prompt_latents if prompt_latents is not None else []:  # (n_tracks, Z) per bar
            for track, z in enumerate(bar):
                _, states = self._step(previous, track, programs[track], states)
                previous = z[None].expand(len(rows), -1)
        if len(programs) > self.prior.config.max_tracks:
            raise ValueError(f"{len(programs)} tracks; the model handles at most {self.prior.config.max_tracks}")
        requested_ts = ctl.parse_time_signature(request.time_signature) if request.time_signature else None
        bar_quarters = 4 * requested_ts[0] / requested_ts[1] if requested_ts else 4.0
        steering = self.steering(request, len(programs), bar_quarters)
        lock, groups = self.new_scale_lock(layout.frame_key), self.draw_groups(layout.frame_key)
        remembers = lock is not None and lock.remembers
        if layout.prompt_bars is not None:  # a continuation goes on from the prompt's rhythm and chromatic notes
            ts = layout.time_signature or (4, 4)
            if steering is not None:
                steering.hear(self._written_grids(layout.prompt_bars[-1], programs, bar_ticks(TPQ, ts)), bar_cells(ts))
            if remembers and layout.prompt_in_key:
                for bar in layout.prompt_bars[-self.scale_lock_memory :]:
                    lock.hear(sounded_classes([phrase_facts(self.tokenizer, p, program) for p, program in zip(bar, programs)]))
        time_signature = requested_ts or layout.time_signature or (4, 4)  # of the last decoded chunk's last bar: a silent slot's empty bar
        chunk, index = self.bars_per_decode(len(programs), steering is not None), 0
        draws = self.draws_per_slot(steering) if steering else 1
        while request.bars is None or index < request.bars:
            n_bars = chunk if request.bars is None else min(chunk, request.bars - index)
            latents, silent = [], []  # (n_bars * n_tracks) x (Z,), and whether the prior drew the slot silent
            for _ in range(n_bars * len(programs)):
                track = len(latents) % len(programs)
                prediction, states = self._step(previous, track, programs[track], states)
                if guided:
                    prediction = self.prior.guide(prediction, request.guidance)
                if steering is None:
                    quiet = bool(self.prior.silent(prediction, temperature, generator)[0])
                    drawn = None if quiet else self.prior.sample(prediction, temperature, generator).float()  # (1, Z)
                else:  # the critic keeps one of several draws, silent ones among them
                    repeated = tuple(x[:1].expand(draws, *x.shape[1:]) for x in prediction)
                    quiet_draws = self.prior.silent(repeated, temperature, generator)  # (K,)
                    candidates = self.prior.sample(repeated, temperature, generator).float()  # (K, Z)
                    best = steering.choose(candidates, quiet_draws, track)
                    quiet, drawn = bool(quiet_draws[best]), candidates[best : best + 1]
                silent.append(quiet)
                # a silent slot: the prior reads the code of an empty bar, as it learned from
                previous = (self._empty_code(programs[track], time_signature)[None] if quiet else drawn).expand(len(rows), -1)
                latents.append(previous[0])
            # The chunk is decoded ahead under the lock's bias; when the lock hears a bar that changes
            # its bias, the rest of the chunk is decoded again: what bar-by-bar decoding writes.
            empty, decoded, heard = self.tokenizer.empty_bar(time_signature), [], None
            for start in range(0, len(latents), len(programs)):
                now = lock.heard_lately() if lock is not None else None
                if start == 0 or now != heard:
                    heard, bias = now, (lock.bias() if lock is not None else None)
                    decoded[start:] = self._decode_slots(request.seed, index * len(programs), latents[start:], silent[start:], bias, groups,
                                                         empty, programs)
                phrases = decoded[start : start + len(programs)]
                bar = self._bar(index, phrases, programs, shift, requested_ts)
                time_signature = bar.time_signature
                if steering is not None or remembers:  # what the bar wrote, in the key frame, cut at its written length
                    length = bar_ticks(TPQ, bar.time_signature)
                    written = [phrase_facts(self.tokenizer, p, program, length) for p, program in zip(phrases, programs)]
                if steering is not None:
                    grids = self._written_grids(phrases, programs, length)
                    steering.settle(written, length / TPQ, grids, bar_cells(bar.time_signature))
                if remembers:
                    lock.hear(sounded_classes(written))
                yield bar
                index += 1

    def _decode_slots(self, seed: int, first_slot: int, latents: list[torch.Tensor], silent: list[bool], bias, groups,
                      empty: list[int], programs: list[int]) -> list[list[int] | None]:
        """Each slot's bar from `first_slot` (the first slot of a bar) on: the sounding ones
        decoded under `bias` for their track's program, the silent ones `empty`."""
        sounding = [i for i, quiet in enumerate(silent) if not quiet]
        slot_programs = [programs[i % len(programs)] for i in sounding]
        decodings = iter(self._decode(seed, first_slot, latents, sounding, bias, groups, slot_programs) if sounding else [])
        return [empty if quiet else next(decodings) for quiet in silent]

    def _decode(self, seed: int, first_slot: int, latents: list[torch.Tensor], sounding: list[int], bias, groups,
                programs: list[int]) -> list[list[int] | None]:
        """The sounding slots' bars. A PhraseVAE's sampled decoding draws each slot's uniforms
        from (seed, slot number in the piece), so a bar's notes do not depend on the chunk it is
        decoded in; a GridCodec decodes greedily, each bar for its track's `programs`."""
        uniforms = None
        if self.decode_temperature > 0 and isinstance(self.codec, PhraseVAE):
            length = self.codec.config.max_len
            draws = [np.random.default_rng([seed, 2, first_slot + i]).random(length) for i in sounding]
            uniforms = torch.from_numpy(np.stack(draws))  # (n_sounding, max_len)
        z = torch.stack([latents[i] for i in sounding])  # (n_sounding, Z)
        return decode_bars(
            self.codec, self.tokenizer, z, logit_bias=bias, salvage=self.salvage, temperature=self.decode_temperature,
            uniforms=uniforms, top_p=self.decode_top_p, token_groups=groups, note_ends=self._note_ends, programs=programs,
        )

    def _written_grids(self, phrases: list[list[int] | None], programs: list[int], length: int) -> list[np.ndarray] | None:
        """Each track's (C,) `onset_cells` of a bar `length` ticks long, C the critic's (None:
        the critic predicts no onset grid)."""
        cells = self.critic.config.onset_cells
        if not cells:
            return None
        return [onset_cells(self.tokenizer, p, program, cells, length) for p, program in zip(phrases, programs)]

    def _empty_code(self, program: int, time_signature: tuple[int, int]) -> torch.Tensor:
        """The codec's latent (Z,) of an empty bar of this program and time signature (cached)."""
        key = (program, time_signature)
        if key not in self._empty_codes:
            bar = self.tokenizer.empty_bar(time_signature)
            self._empty_codes[key] = encode_bars(self.codec, self.tokenizer, [bar], [program])[0].to(self.device)
        return self._empty_codes[key]

    def bars_per_batch(self, n_tracks: int) -> int:
        """Bars decoded per codec batch for this many tracks."""
        return max(1, self.decode_phrases // n_tracks)

    def _step(self, previous, track: int, program: int, states):
        t = torch.tensor([track] * len(previous), device=self.device)
        p = torch.tensor([program] * len(previous), device=self.device)
        return self.prior.step(previous, t, p, states)

    def _bar(self, index: int, decoded: list[list[int] | None], programs: list[int], shift: int, requested_ts) -> GeneratedBar:
        """A bar from its tracks' decoded phrases (None: nothing to salvage), moved `shift` semitones.
        A phrase with notes of the wrong kind for its track (drum notes on a pitched track or
        pitches on drums) is left silent, as an unsalvageable one is."""
        tok = self.tokenizer
        decoded = [bar if bar is not None and fits_track(tok, bar, p) else None for bar, p in zip(decoded, programs)]
        phrases = [self._transpose(bar, p, shift) if bar is not None else [tok.bar_id] for bar, p in zip(decoded, programs)]
        invalid = [track for track, bar in enumerate(decoded) if bar is None]
        time_signature = requested_ts or _majority_time_signature(tok, phrases)
        return GeneratedBar(index, time_signature, phrases, invalid)

    def _transpose(self, bar: list[int], program: int, shift: int) -> list[int]:
        return bar if shift == 0 else self.mover.transpose(bar, program, shift).tolist()

    @torch.no_grad()
    def _prompt_latents(self, path: Path) -> tuple[torch.Tensor, list[int], int, float, tuple[int, int], list[list[list[int]]]]:
        """(n_bars, n_tracks, Z) codec latents of a MIDI prompt (in the prior's key frame), its
        programs, its key (-1: unknown), its tempo in BPM, its last bar's time signature and
        its bars' base ids per track (moved as the latents are)."""
        tok = self.tokenizer
        raw = load_score(path)
        score = tok.preprocess(raw)
        song = tok.encode_song(score, preprocessed=True)
        if not song.tracks:
            raise ValueError(f"{path}: the prompt holds no notes")
        programs = [t.program for t in song.tracks]
        tempo = ctl.extract_controls(raw, get_bars_ticks(raw)).tempo  # before the tokenizer rounds it to a bin
        key = ctl.extract_controls(score, song.bar_ticks).key
        shift = normalizing_shift(key) if self.prior.config.key_normalized else 0
        bars = [self._transpose(bar, t.program, shift) for t in song.tracks for bar in t.bars]
        mu = encode_bars(self.codec, tok, bars, [t.program for t in song.tracks for _ in t.bars])
        grid = mu.view(len(programs), song.n_bars, -1).transpose(0, 1)  # (n_bars, n_tracks, Z)
        last_ts = _majority_time_signature(tok, [t.bars[-1] for t in song.tracks])
        by_bar = [[bars[k * song.n_bars + b] for k in range(len(programs))] for b in range(song.n_bars)]  # (n_bars) x (n_tracks) base ids
        return grid.to(self.device), programs, key, tempo, last_ts, by_bar

    # ---- MIDI ----------------------------------------------------------------------
    def write(
        self,
        request: Request,
        path: str | Path,
        chunk_bars: int = 8,
        stream: bool = True,
        on_bar: Callable[[GeneratedBar], None] | None = None,
    ) -> dict:
        """Generate into a MIDI file; with `stream` the file is valid after every chunk.

        A KeyboardInterrupt ends generation cleanly, leaving a valid file. `on_bar` is
        called after each bar is written (progress, measurements).
        """
        layout = self.layout(request)  # the prompt is read and encoded once
        programs = layout.programs
        tempo = requested_bpm(request.tempo) or layout.prompt_tempo  # else the first decoded bar's (below)
        written = invalid = 0
        tick = 0
        previous_ts = None
        with StreamingMidiWriter(path, TPQ, programs) as writer:
            try:
                for bar in self._bars(request, layout):
                    if bar.index == 0:
                        decoded = (first_tempo(self.tokenizer.token_names(p)) for p in bar.phrases)
                        tempo = tempo or next((t for t in decoded if t), DEFAULT_TEMPO)
                        writer.tempo(0, tempo)
                    if bar.time_signature != previous_ts:
                        writer.time_signature(tick, *bar.time_signature)
                        previous_ts = bar.time_signature
                    length = bar_ticks(TPQ, bar.time_signature)
                    for track, phrase in enumerate(bar.phrases):
                        for n in written_notes(self.tokenizer, phrase, length):
                            writer.note(track, tick + n.start, n.duration, n.pitch, n.velocity)
                    tick += length
                    written += 1
                    invalid += len(bar.invalid_tracks)
                    if stream and written % chunk_bars == 0:
                        writer.flush(until=tick)
                    if on_bar is not None:
                        on_bar(bar)
            except KeyboardInterrupt:
                pass
        return {"path": str(path), "bars": written, "tracks": len(programs), "tempo": tempo, "silenced_phrases": invalid}


def requested_bpm(tempo: str | None) -> float | None:
    """BPM of a tempo request: the number itself, or the middle of a named tempo class."""
    if tempo is None:
        return None
    try:
        return float(tempo)
    except ValueError:
        cls = ctl.parse_tempo(tempo)  # raises with the accepted names
        edges = (40.0, *ctl.TEMPO_CLASS_EDGES, 200.0)
        return (edges[cls] + edges[cls + 1]) / 2


def _majority_time_signature(tok: PhraseTokenizer, phrases: list[list[int]]) -> tuple[int, int]:
    found = []
    for phrase in phrases:
        names = tok.token_names(phrase[:2])
        if len(names) > 1 and names[1].startswith("TimeSig_"):
            num, den = names[1].split("_")[1].split("/")
            found.append((int(num), int(den)))
    if not found:
        return (4, 4)
    values, counts = np.unique(np.array(found), axis=0, return_counts=True)
    return tuple(int(x) for x in values[counts.argmax()])
