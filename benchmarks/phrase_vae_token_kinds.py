"""Which tokens a PhraseVAE gets wrong: teacher-forced accuracy by token kind.

A BPE token merges base tokens; its kind is the set of base-token types it holds (for example
"Duration+Velocity"). Decoding from the posterior mean of each of `--phrases` random
non-empty test phrases, as `phrase_vae_recipes.py` does.

    cd benchmarks && OMP_NUM_THREADS=1 python phrase_vae_token_kinds.py ../src/musemorphic/pretrained/phrase_vae ../data/pop909
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.phrase_vae import load_phrase_vae


def token_kind(tokenizer, token: int) -> str:
    if token == tokenizer.eos_id:
        return "EOS"
    if token in tokenizer.program_by_id:
        return "Program"
    return "+".join(sorted({name.split("_")[0] for name in tokenizer.id_names(token)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codec")
    parser.add_argument("data")
    parser.add_argument("--phrases", type=int, default=512)
    parser.add_argument("--kinds", type=int, default=12, help="the most frequent kinds to list")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_phrase_vae(args.codec)
    model.float()
    batcher = PhraseBatcher(PhraseDataset(args.data, split="test"), model.config.max_len, nonempty_only=True)
    chosen = np.random.default_rng(0).choice(len(batcher.indices), args.phrases, replace=False)
    ids = batcher.encode(batcher.indices[chosen])  # (N, T)
    with torch.no_grad():
        mu, _ = model.encode(ids)
        predicted = model.decode_logits(mu, model.decoder_inputs(ids)).argmax(-1)
    seen, right = Counter(), Counter()
    for token, guess in zip(ids.flatten().tolist(), predicted.flatten().tolist()):
        if token != tokenizer.pad_id:
            kind = token_kind(tokenizer, token)
            seen[kind] += 1
            right[kind] += guess == token
    total = sum(seen.values())
    rows = [{"kind": k, "share": round(n / total, 3), "accuracy": round(right[k] / n, 3)} for k, n in seen.most_common(args.kinds)]
    print("| token kind | share of tokens | teacher-forced accuracy |\n|---|---|---|")
    for row in rows:
        print(f"| {row['kind']} | {row['share']:.3f} | {row['accuracy']:.3f} |")
    print(json.dumps({"machine": machine(), "codec": args.codec, "phrases": args.phrases, "kinds": rows}))


if __name__ == "__main__":
    main()
