"""Phrase FID: the Frechet distance against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from musemorphic.evaluation.frechet import frechet_distance


def test_identical_sets_are_at_zero_and_a_shift_costs_its_square():
    x = np.random.default_rng(0).normal(size=(4000, 5))
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    shift = np.array([1.0, 2.0, 0.0, 0.0, -1.0])
    assert frechet_distance(x, x + shift) == pytest.approx(6.0, abs=1e-8)


def test_scaled_gaussians_match_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200_000, 2))
    b = 3 * rng.normal(size=(200_000, 2))
    # N(0, I) vs N(0, 9I): trace terms 2 + 18 - 2 * 2 * 3 = 8
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=0.02)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same width"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))
