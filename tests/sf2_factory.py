"""A minimal SoundFont 2 file built in code: one sine-wave sample played for every key by one
instrument under preset 0 (bank 0), so rendering can be tested without a GM soundfont."""

from __future__ import annotations

import math
import struct


def _chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode("ascii")[:19].ljust(20, b"\0")


def sine_soundfont(sample_rate: int = 22050, seconds: float = 0.5, root_key: int = 69) -> bytes:
    n = int(sample_rate * seconds)
    freq = 440.0 * 2 ** ((root_key - 69) / 12)
    samples = [int(12000 * math.sin(2 * math.pi * freq * i / sample_rate)) for i in range(n)]
    smpl = struct.pack(f"<{n + 46}h", *samples, *([0] * 46))  # 46 zero points after a sample (spec)
    loop_start, loop_end = n // 4, n // 4 + round(sample_rate / freq) * int((n // 2) / (sample_rate / freq))

    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", b"sine\0\0"))
    sdta = _list(b"sdta", _chunk(b"smpl", smpl))
    phdr = struct.pack("<20sHHHIII", _name("sine"), 0, 0, 0, 0, 0, 0) + struct.pack("<20sHHHIII", _name("EOP"), 0, 0, 1, 0, 0, 0)
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)
    pmod = b"\0" * 10
    pgen = struct.pack("<Hh", 41, 0) + struct.pack("<Hh", 0, 0)  # instrument 0
    inst = struct.pack("<20sH", _name("sine"), 0) + struct.pack("<20sH", _name("EOI"), 1)
    ibag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 2, 0)
    imod = b"\0" * 10
    igen = struct.pack("<Hh", 54, 1) + struct.pack("<Hh", 53, 0) + struct.pack("<Hh", 0, 0)  # loop, sample 0
    shdr = struct.pack("<20sIIIIIBbHH", _name("sine"), 0, n, loop_start, loop_end, sample_rate, root_key, 0, 0, 1)
    shdr += struct.pack("<20sIIIIIBbHH", _name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", pmod), _chunk(b"pgen", pgen),
        _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", imod), _chunk(b"igen", igen),
        _chunk(b"shdr", shdr),
    )
    body = b"sfbk" + info + sdta + pdta
    return b"RIFF" + struct.pack("<I", len(body)) + body
