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


@pytest.fixture(scope="session")
def fixture_dataset_dir(tmp_path_factory) -> Path:
    """The bundled fixtures prepared once per test session (BPE included)."""
    from musemorphic.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("fixture_dataset")
    prepare([FIXTURES], out, PrepareConfig(workers=1))
    return out


@pytest.fixture(scope="session")
def fixture_dataset(fixture_dataset_dir):
    from musemorphic.data.dataset import PhraseDataset

    return PhraseDataset(fixture_dataset_dir, split=None)
