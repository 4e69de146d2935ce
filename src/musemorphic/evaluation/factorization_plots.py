"""Seed 001's pictures of a latent space: cosine histograms by pair type, a PCA of the
difference vectors, and the singular-value spectra of shift grids (one PNG each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musemorphic.evaluation.factorization import FactorizationFigures


def factorization_pngs(figures: FactorizationFigures, out_dir: str | Path, title: str) -> list[Path]:
    """Write cosines.png, pca.png and spectra.png into out_dir; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = figures.samples
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    bins = np.linspace(-1, 1, 41)
    ax.hist(s["cos_cross"], bins=bins, alpha=0.5, density=True, label="pitch vs time (want 0)")
    ax.hist(s["cos_same"], bins=bins, alpha=0.5, density=True, label="same sign (want +1)")
    ax.hist(s["cos_opposite"], bins=bins, alpha=0.5, density=True, label="opposite sign (want -1)")
    ax.set_xlabel("cosine similarity of difference vectors")
    ax.set_title(f"{title}: cosines by pair type")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "cosines.png"))

    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    diffs = np.concatenate([s["diff_pitch"], s["diff_time"]])
    centred = diffs - diffs.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    n = len(s["diff_pitch"])
    ax.scatter(projected[:n, 0], projected[:n, 1], s=6, alpha=0.3, label="pitch shift")
    ax.scatter(projected[n:, 0], projected[n:, 1], s=6, alpha=0.3, label="time shift")
    share = singular[:2] ** 2 / (singular**2).sum()
    ax.set_xlabel(f"PC1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({share[1]:.0%})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{title}: PCA of difference vectors")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "pca.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, key, label in ((axes[0], "spectrum_pitch", "(pitch, time x Z)"), (axes[1], "spectrum_time", "(time, pitch x Z)")):
        spectra = s[key]
        for row in spectra:
            ax.plot(row, color="0.6", alpha=0.15)
        ax.plot(spectra.mean(0), color="C3", linewidth=2, label="mean")
        ax.set_xlabel("singular value index")
        ax.set_ylabel("share of the sum")
        ax.set_title(f"shift grid as {label}")
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: singular values of shift-grid embeddings")
    paths.append(_save(fig, out_dir / "spectra.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
