"""Is a LatentMamba silence head calibrated? Its teacher-forced p(silent) against real rests.

Every test-split song of a dataset, read whole and teacher-forced with its controls left
unspecified (as `eval generate` samples). For each track: the share of its bars that are
silent, and the head's mean p(silent) over the same slots; the same after a sounding bar of
that track (a drop-out) and after a silent one (a rest that goes on); each also at
`--temperature` (the logit divided by it, as the generator draws). A calibrated head's means
match the real shares; the generated pieces' own rates are `track_continuity.py`'s.

`--history sampled` asks why free running differs: each sounding slot's latent in the history
the head reads is replaced by a draw from the prior's own teacher-forced prediction for it (at
`--temperature`, seeded), silent slots keep the empty bar's code, as the generator feeds them.
The head then reads histories one step off the codes. With `--passes K` the draws are
made K times, each pass from the predictions the previous pass's draws gave, so a slot's
history is K steps deep in the prior's own draws (free running with the real rests, at K as
long as the song).

    OMP_NUM_THREADS=1 python benchmarks/silence_calibration.py --codec src/musemorphic/pretrained/phrase_vae \
        --data data/pop909 --prior src/musemorphic/pretrained/latent_mamba --temperature 1.1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import machine, priors_on_test_songs


def song_silence(model, windows, song: int, sampled_history: float | None = None, passes: int = 1) -> tuple[np.ndarray, np.ndarray, int]:
    """(slots,) silence logits and real silent flags of a whole song, and its track count;
    with `sampled_history` (a temperature) the sounding slots read `passes`-step draws (module doc)."""
    rows = windows.songs[song][0]
    latents, tracks, programs, controls, silent = windows.window(song, 0, rows.shape[0])
    unspecified = torch.full((1, len(controls)), -1, dtype=torch.long)
    z = torch.from_numpy(np.asarray(latents, dtype=np.float32))[None]  # (1, L, Z)
    silent = np.asarray(silent, dtype=bool)
    inputs = (torch.from_numpy(tracks)[None], torch.from_numpy(programs)[None])
    with torch.no_grad():
        prediction = model(unspecified, z, *inputs)
        generator = torch.Generator().manual_seed(song)
        for _ in range(passes if sampled_history is not None else 0):
            draws = model.sample(prediction, sampled_history, generator)  # (1, L, Z)
            z = torch.where(torch.from_numpy(silent)[None, :, None], z, draws)
            prediction = model(unspecified, z, *inputs)
    return prediction[3][0].double().numpy(), silent, rows.shape[1]


def rates(logits: np.ndarray, silent: np.ndarray, temperature: float) -> dict[str, float]:
    return {"slots": int(len(silent)), "real_silent_share": round(float(silent.mean()), 4) if len(silent) else None,
            "mean_p_silent": round(float((1 / (1 + np.exp(-logits))).mean()), 4) if len(silent) else None,
            f"mean_p_silent_at_{temperature}": round(float((1 / (1 + np.exp(-logits / temperature))).mean()), 4) if len(silent) else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True, action="append", help="repeatable (silence-head priors)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--history", choices=("real", "sampled"), default="real",
                        help="the codes the head reads: the real ones, or one-step draws for sounding slots")
    parser.add_argument("--passes", type=int, default=1, help="with --history sampled: how many steps deep the draws go")
    args = parser.parse_args()
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    torch.set_num_threads(1)
    results = {}
    for path, model, windows in priors_on_test_songs(args.codec, args.data, args.prior):
        if not model.config.silence_head:
            raise SystemExit(f"{path}: a prior without a silence head")
        per_track: dict[int, dict[str, list[np.ndarray]]] = {}
        for song in range(len(windows.songs)):
            logits, silent, n_tracks = song_silence(model, windows, song, args.temperature if args.history == "sampled" else None, args.passes)
            for track in range(n_tracks):
                own_logits, own_silent = logits[track::n_tracks], silent[track::n_tracks]
                after = own_silent[:-1]  # the same track's previous bar was silent
                parts = per_track.setdefault(track, {"all": [], "after sounding": [], "after silent": []})
                parts["all"].append((own_logits, own_silent))
                parts["after sounding"].append((own_logits[1:][~after], own_silent[1:][~after]))
                parts["after silent"].append((own_logits[1:][after], own_silent[1:][after]))
        results[str(path)] = {
            f"track {track}": {
                name: rates(np.concatenate([l for l, _ in pieces]), np.concatenate([s for _, s in pieces]), args.temperature)
                for name, pieces in parts.items()
            }
            for track, parts in sorted(per_track.items())
        }
    print(json.dumps({"machine": machine(), "data": str(args.data), "temperature": args.temperature, "history": args.history, "passes": args.passes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
