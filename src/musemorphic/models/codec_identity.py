"""What a prior or a critic records of the codec it learned from, and how that is checked.

A codec (PhraseVAE or GridCodec) exposes `config`, `code_fingerprint()` (its encoder side's
weights: what a prior learned) and `decoding_fingerprint()` (every weight: what a critic learned).
"""

from __future__ import annotations

import hashlib

import torch


def weights_fingerprint(modules) -> str:
    """SHA-256 of the modules' weights and buffers, by name, rounded to fp16 (NaNs as 0)."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().cpu()
            if value.is_floating_point():
                value = value.nan_to_num(nan=0.0).to(torch.float16)
            digest.update(name.encode())
            digest.update(value.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def codec_record(codec, decodings: bool = False) -> dict:
    """What a prior (`decodings=False`) or a critic (`True`) records of the codec it learned:
    its config and the fingerprint of what it learned from it."""
    record = {"model": codec.config.to_dict(), "code_fingerprint": codec.code_fingerprint()}
    if decodings:
        record["decoding_fingerprint"] = codec.decoding_fingerprint()
    return record


def learned_from(record: dict, codec) -> bool:
    """Whether a model that saved `record` (`codec_record`) learned from this codec: the same
    config and every fingerprint the record holds (one saved before fingerprints were kept is
    checked by the config alone)."""
    fingerprints = {"code_fingerprint": codec.code_fingerprint, "decoding_fingerprint": codec.decoding_fingerprint}
    return record.get("model") == codec.config.to_dict() and all(
        record[key] == fingerprint() for key, fingerprint in fingerprints.items() if key in record
    )
