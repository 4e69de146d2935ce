"""One picture of every metric's distribution per set (the report's metrics.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musemorphic.evaluation.distributions import densities, finite

STYLES = {  # set -> (colour, line style); sets not listed are not drawn
    "real": ("black", "-"),
    "generated": ("tab:red", "-"),
    "train": ("tab:blue", "--"),
    "shuffled_bars": ("tab:grey", ":"),
}


def metric_densities_png(values: dict[str, dict[str, np.ndarray]], out: str | Path) -> Path:
    """values: set -> metric -> per-window values. One panel per metric, one KDE curve per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(next(iter(values.values())))
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=100, squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        drawn = {name: finite(values[name][metric]) for name in STYLES if name in values}
        drawn = {name: v for name, v in drawn.items() if len(v)}
        if drawn:
            grid, curves = densities(*drawn.values())
            for (name, _), curve in zip(drawn.items(), curves):
                colour, style = STYLES[name]
                ax.plot(grid, curve, color=colour, linestyle=style, label=name)
        ax.set_title(metric.replace("_", " "))
        ax.set_yticks([])
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out)
    plt.close(fig)
    return out
