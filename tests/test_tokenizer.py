"""REMI+ phrase tokenizer: round trips against miditok's quantized reference, BPE, bars."""

from __future__ import annotations

import pytest
import symusic

import midi_factory
from conftest import FIXTURE_FILES
from musemorphic.data.tokenizer import PhraseTokenizer, default_bpe_vocab_size
from score_utils import notes_of, same_resolution

VALID_CASES = ["drums_only", "seven_eight", "five_four_tempo_changes", "zero_length_notes", "format0_multichannel"]


def _scores():
    for path in FIXTURE_FILES:
        yield path.name, symusic.Score(str(path))
    for name in VALID_CASES:
        yield name, symusic.Score.from_midi(midi_factory.CASES[name]())
    yield "simple_song", symusic.Score.from_midi(midi_factory.simple_song())


SCORES = dict(_scores())


def test_fixtures_are_present():
    assert len(FIXTURE_FILES) >= 6


@pytest.mark.parametrize("name", sorted(SCORES))
def test_round_trip_equals_miditok_reference(tokenizer, name):
    reference = tokenizer.preprocess(SCORES[name])
    decoded = tokenizer.decode_song(tokenizer.encode_song(reference, preprocessed=True))
    reference = same_resolution(reference, decoded)
    assert notes_of(decoded) == notes_of(reference)
    assert [(t.time, round(t.qpm)) for t in decoded.tempos] == [(t.time, round(t.qpm)) for t in reference.tempos]
    assert [(t.time, t.numerator, t.denominator) for t in decoded.time_signatures] == [
        (t.time, t.numerator, t.denominator) for t in reference.time_signatures
    ]


@pytest.mark.parametrize("name", sorted(SCORES))
def test_bars_join_back_to_the_whole_track(tokenizer, name):
    score = tokenizer.preprocess(SCORES[name])
    song = tokenizer.encode_song(score, preprocessed=True)
    whole = tokenizer.remi.encode(score, encode_ids=False, no_preprocess_score=True)
    for track, seq in zip(song.tracks, whole, strict=True):
        assert len(track.bars) == song.n_bars
        assert all(bar[0] == tokenizer.bar_id for bar in track.bars)
        joined = [i for bar in track.bars for i in bar]
        expected = list(seq.ids)[1:]  # miditok's stream opens with the Program token
        assert joined[: len(expected)] == expected
        padding = tokenizer.token_names(joined[len(expected) :])
        assert all(t == "Bar_None" or t.startswith("TimeSig_") for t in padding)


def test_one_bar_is_one_phrase_in_seven_eight(tokenizer):
    song = tokenizer.encode_song(SCORES["seven_eight"])
    assert song.n_bars == 8
    for bar in song.tracks[0].bars:
        names = tokenizer.token_names(bar)
        assert names[:2] == ["Bar_None", "TimeSig_7/8"]
        assert names.count("Bar_None") == 1


def test_vocabulary_matches_the_seed(tokenizer):
    vocab = tokenizer.base_vocab
    count = lambda prefix: sum(t.startswith(prefix) for t in vocab)  # noqa: E731
    assert count("Pitch_") == 128
    assert count("Velocity_") == 32
    assert count("Duration_") == 16
    tempos = sorted(float(t.split("_")[1]) for t in vocab if t.startswith("Tempo_"))
    assert tempos[0] == 30 and tempos[-1] == 210 and len(tempos) == 46
    positions_in_4_4 = {t for t in vocab if t.startswith("Position_")}
    assert {f"Position_{i}" for i in range(16)} <= positions_in_4_4
    assert count("Program_") == 129  # -1 (drums) and 0..127
    assert {"TrackStart_None", "TrackEnd_None", "Bar_None", "TimeSig_4/4", "TimeSig_7/8"} <= set(vocab)
    assert "TimeSig_1/4" not in vocab  # one-beat "bars" are treated as a missing meter


def test_bpe_is_lossless_and_never_crosses_a_bar(tmp_path):
    tok = PhraseTokenizer()
    phrases = []
    for score in SCORES.values():
        for track in tok.encode_song(score).tracks:
            phrases.extend(track.bars)
    tok.train_bpe(phrases, vocab_size=tok.base_vocab_size + 200)
    assert tok.vocab_size == tok.base_vocab_size + 200
    encoded = tok.bpe_encode(phrases)
    assert sum(map(len, encoded)) < 0.8 * sum(map(len, phrases))  # it compresses
    assert [tok.bpe_decode(e) for e in encoded] == phrases
    # every learned token expands to base tokens holding at most one Bar, at its start
    for expansion in tok._expansion:
        assert tok.bar_id not in expansion[1:]
    # and it survives saving: same ids after a reload
    tok.save(tmp_path / "tokenizer.json")
    again = PhraseTokenizer.load(tmp_path / "tokenizer.json")
    assert again.bpe_encode(phrases[:50]) == encoded[:50]
    assert PhraseTokenizer.from_json(tok.to_json()).bpe_encode(phrases[:50]) == encoded[:50]


def test_untrained_bpe_is_the_identity(tokenizer):
    phrase = tokenizer.encode_song(SCORES["simple_song"]).tracks[0].bars[0]
    assert tokenizer.bpe_encode([phrase]) == [phrase]
    assert tokenizer.bpe_decode(phrase) == phrase


def test_default_bpe_vocab_grows_with_the_corpus():
    base = 483
    sizes = [default_bpe_vocab_size(n, base) for n in (1, 100, 1000, 100_000)]
    assert sizes == sorted(sizes)
    assert sizes[0] > base and sizes[-1] == 8192
    assert all((s - base) % 64 == 0 for s in sizes[:-1])


def test_empty_score_gives_an_empty_grid(tokenizer):
    song = tokenizer.encode_song(symusic.Score(480))
    assert song.tracks == [] and song.n_bars == 0


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        PhraseTokenizer.load(tmp_path / "nope.json")

