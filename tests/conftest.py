"""Shared fixtures: the bundled MIT-licensed MIDI files and a base REMI+ tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from musemorphic.data.tokenizer import PhraseTokenizer

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_FILES = sorted(FIXTURES.glob("*.mid"))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer() -> PhraseTokenizer:
    return PhraseTokenizer()
