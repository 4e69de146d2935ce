"""The soft scale lock: which tokens it leans away from, and by how much."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musemorphic.data.controls import scale_pitch_classes
from musemorphic.generation.scale_lock import ScaleLock, pitch_class_notes, scale_logit_bias

WHITE_KEYS = frozenset({0, 2, 4, 5, 7, 9, 11})


def test_scales_of_keys():
    assert scale_pitch_classes(0) == WHITE_KEYS  # C major
    assert scale_pitch_classes(21) == WHITE_KEYS  # A minor shares it
    assert scale_pitch_classes(14) == frozenset({2, 4, 5, 7, 9, 10, 0})  # D minor: B flat
    assert scale_pitch_classes(6) == frozenset({6, 8, 10, 11, 1, 3, 5})  # F# major
    with pytest.raises(ValueError, match="0..23"):
        scale_pitch_classes(24)


def test_base_tokens_outside_the_scale_are_penalised_once_per_note(tokenizer):
    vocab = tokenizer.base_vocab
    bias = scale_logit_bias(tokenizer, WHITE_KEYS, 2.5)
    assert bias.shape == (tokenizer.vocab_size,)
    assert bias[vocab["Pitch_61"]] == -2.5 and bias[vocab["Pitch_70"]] == -2.5  # C#, A#
    assert bias[vocab["Pitch_60"]] == 0 and bias[vocab["Pitch_71"]] == 0  # C, B
    for other in ("PitchDrum_37", "Position_1", "Velocity_91", "Bar_None", "Program_0"):
        assert bias[vocab[other]] == 0, other  # drum notes and everything else are left alone
    assert (bias.unique() == bias.new_tensor([-2.5, 0.0])).all()  # base tokens hold one note at most


def test_bpe_tokens_pay_for_each_note_outside(fixture_dataset):
    tok = fixture_dataset.tokenizer
    bias = scale_logit_bias(tok, WHITE_KEYS, 1.0)
    counts = {}
    for i in range(tok.base_vocab_size, tok.vocab_size):
        names = tok.token_names(tok.bpe_decode([i]))
        pitches = [int(n.split("_")[1]) for n in names if n.startswith("Pitch_")]
        counts[i] = sum(p % 12 in (1, 3, 6, 8, 10) for p in pitches)
    assert any(c > 0 for c in counts.values()) and any(c == 0 for c in counts.values())
    assert all(bias[i] == -c for i, c in counts.items())


def test_strength_zero_changes_nothing_and_a_negative_one_is_refused(tokenizer):
    assert (scale_logit_bias(tokenizer, WHITE_KEYS, 0.0) == 0).all()
    with pytest.raises(ValueError, match="at least 0"):
        scale_logit_bias(tokenizer, WHITE_KEYS, -1.0)


def _sounded(*pitch_classes: int) -> np.ndarray:
    out = np.zeros(12, dtype=bool)
    out[list(pitch_classes)] = True
    return out


def test_a_lock_without_memory_is_the_plain_bias_whatever_it_hears(tokenizer):
    lock = ScaleLock(pitch_class_notes(tokenizer), WHITE_KEYS, 2.5)
    lock.hear(_sounded(1, 6))
    assert torch.equal(lock.bias(), scale_logit_bias(tokenizer, WHITE_KEYS, 2.5))


def test_a_chromatic_class_heard_lately_passes_the_lock_until_it_is_forgotten(tokenizer):
    vocab = tokenizer.base_vocab
    lock = ScaleLock(pitch_class_notes(tokenizer), WHITE_KEYS, 3.0, memory=2)
    assert lock.bias()[vocab["Pitch_61"]] == -3.0  # nothing heard yet: every C# pays
    lock.hear(_sounded(0, 1, 4))  # a bar with C, C# and E
    bias = lock.bias()
    assert bias[vocab["Pitch_61"]] == 0 and bias[vocab["Pitch_73"]] == 0  # C# in any octave passes
    assert bias[vocab["Pitch_63"]] == -3.0 and bias[vocab["Pitch_60"]] == 0  # D# still pays; C never did
    lock.hear(_sounded(0))
    assert lock.bias()[vocab["Pitch_61"]] == 0  # heard two bars ago: remembered
    lock.hear(_sounded())
    assert lock.bias()[vocab["Pitch_61"]] == -3.0  # three bars ago: forgotten


def test_a_welcome_favours_the_chromatic_classes_heard_lately(tokenizer):
    vocab = tokenizer.base_vocab
    lock = ScaleLock(pitch_class_notes(tokenizer), WHITE_KEYS, 1.0, memory=1, welcome=0.5)
    assert lock.bias()[vocab["Pitch_61"]] == -1.0
    lock.hear(_sounded(1, 2))  # C# (outside the scale) and D (inside)
    bias = lock.bias()
    assert bias[vocab["Pitch_61"]] == 0.5 and bias[vocab["Pitch_62"]] == 0 and bias[vocab["Pitch_63"]] == -1.0
    lock.hear(_sounded())
    assert lock.bias()[vocab["Pitch_61"]] == -1.0


def test_bpe_tokens_pay_only_for_their_fresh_chromatic_notes(fixture_dataset):
    tok = fixture_dataset.tokenizer
    lock = ScaleLock(pitch_class_notes(tok), WHITE_KEYS, 1.0, memory=4)
    lock.hear(_sounded(1, 8))  # C# and G# heard
    bias = lock.bias()
    fresh = []
    for i in range(tok.base_vocab_size, tok.vocab_size):
        pitches = [int(n.split("_")[1]) for n in tok.token_names(tok.bpe_decode([i])) if n.startswith("Pitch_")]
        fresh.append(sum(p % 12 in (3, 6, 10) for p in pitches))
        assert bias[i] == -fresh[-1]
    assert any(fresh) and not all(fresh)


def test_a_lock_refuses_a_negative_memory(tokenizer):
    with pytest.raises(ValueError, match="memory"):
        ScaleLock(pitch_class_notes(tokenizer), WHITE_KEYS, 1.0, memory=-1)
