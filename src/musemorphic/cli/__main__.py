"""`python -m musemorphic.cli` (as `torchrun ... -m musemorphic.cli train ...` runs it)."""

from musemorphic.cli import app

app()
