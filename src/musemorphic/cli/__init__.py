"""Command line: thin wrappers that parse arguments and call the library.

`musemorphic.cli.app` is the `musemorphic` command; each module registers its commands on it.
"""

from musemorphic.cli import data, evaluate, generate, models, research, train  # noqa: F401  (registers the commands)
from musemorphic.cli.common import app

__all__ = ["app"]
