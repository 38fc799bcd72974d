"""The bad-input corpus: every case runs the real `startpoint` CLI as a subprocess (temporary STARTPOINT_HOME)
and must end with exactly one `error: ...` line on stderr naming the file / row / option and the fix, a non-zero
exit code, no traceback, and nothing written or changed (the warehouse byte-identical, no new files anywhere in
the home or next to the input). No case trains: each one fails before training starts.

Text inputs live in tests/bad_inputs/ (see its README); binary ones are generated here. The cases run through a
zygote (one warm interpreter forking a child per case, see _ZYGOTE) to stay well under a minute; the FRESH ones also
run as `python -m pipelines.cli` in a fresh interpreter. The published-results cases (hostile model ids) run
in-process: a bad id is a rejected row, never a stopped import.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from product_fixture import build

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
ARCH = "all-MiniLM-L6-v2"


def _good_rows(n: int = 30) -> list[tuple[str, str]]:
    return [(f"{'great' if i % 2 else 'awful'} film number {i}", "pos" if i % 2 else "neg") for i in range(n)]


def _csv_bytes(rows=None) -> bytes:
    return pl.DataFrame(rows or _good_rows(), schema=["text", "label"], orient="row").write_csv().encode("utf-8")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


XLSX = {"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"<x/>"}
ODS = {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<office:document/>"}


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(_good_rows(), schema=["text", "label"], orient="row").write_parquet(buf)
    return buf.getvalue()


def _parquet_none_labels() -> bytes:
    buf = io.BytesIO()
    rows = _good_rows()
    rows = [(text, None if i in (4, 11) else label) for i, (text, label) in enumerate(rows)]
    pl.DataFrame(rows, schema={"text": pl.String, "label": pl.String}, orient="row").write_parquet(buf)
    return buf.getvalue()


def _latin1() -> bytes:
    body = "text,label\n" + "".join(f"ok {i},{'pos' if i % 2 else 'neg'}\n" for i in range(14)) + "café crème,pos\n"
    return body.encode("latin-1")


# Generated inputs: file name -> bytes (binary, or awkward to commit).
GENERATED = {
    "utf16_bom.csv": b"\xff\xfe" + _csv_bytes().decode().encode("utf-16-le"),
    "utf16_be_bom.csv": b"\xfe\xff" + _csv_bytes().decode().encode("utf-16-be"),
    "utf16_no_bom.csv": _csv_bytes().decode().encode("utf-16-le"),
    "utf32.csv": _csv_bytes().decode().encode("utf-32"),
    "latin1.csv": _latin1(),
    "reviews.xlsx": _zip(XLSX),
    "reviews.ods": _zip(ODS),
    "workbook_as.csv": _zip(XLSX),
    "sheet_as.csv": _zip(ODS),
    "archive_as.csv": _zip({"reviews.csv": _csv_bytes(), "readme.txt": b"hello"}),
    "reviews.zip": _zip({"reviews.csv": _csv_bytes()}),
    "legacy_as.csv": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
    "compressed.csv": gzip.compress(_csv_bytes()),
    "parquet_as.csv": _parquet_bytes(),
    "not_parquet.parquet": _csv_bytes(),
    "none_labels.parquet": _parquet_none_labels(),
    "report_as.csv": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "binary.csv": b"text,label\n\x00\x01\x02\x03binary\x00junk,pos\n" * 3,
    "hostile\x1b[2Jname.csv": CORPUS.joinpath("nan_labels.csv").read_bytes(),
}


@dataclass
class Case:
    name: str
    argv: list[str]  # {scratch} is the case's folder (inputs are copied or generated into it)
    expect: list[str]  # each must appear (case-insensitive) in the one error line
    inputs: list[str] = field(default_factory=list)  # corpus or generated file names to place in {scratch}
    warehouse: str = "fixture"  # fixture | none | garbage | empty
    env: dict = field(default_factory=dict)
    setup: str | None = None  # extra preparation, see _prepare


def _data(name: str, *extra: str) -> list[str]:
    return ["recommend", "--data", "{scratch}/" + name, *extra]


def _readonly_dir(scratch: Path) -> Path:
    """A folder nobody may write in: chmod works for a normal user; root needs a read-only filesystem."""
    if os.geteuid() != 0:
        folder = scratch / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys")


CASES = [
    # --- the data file: type, encoding, shape
    Case("missing file", _data("nowhere.csv"), ["nowhere.csv", "no such file", "--data"]),
    Case("directory as data", ["recommend", "--data", "{scratch}/folder"], ["folder", "is a directory", "--data"],
         setup="folder"),
    Case("empty file", _data("empty.csv"), ["empty.csv", "the file is empty"], ["empty.csv"]),
    Case("header only", _data("header_only.csv"), ["header_only.csv", "no data rows"], ["header_only.csv"]),
    Case("three rows", _data("three_rows.csv"), ["three_rows.csv", "at least 10"], ["three_rows.csv"]),
    Case("unknown extension", _data("notes.txt"), ["notes.txt", "unknown file type '.txt'", ".csv"], ["notes.txt"]),
    Case("utf-16 with BOM", _data("utf16_bom.csv"), ["utf16_bom.csv", "UTF-16", "iconv -f utf-16"], ["utf16_bom.csv"]),
    Case("utf-16 big-endian BOM", _data("utf16_be_bom.csv"), ["utf16_be_bom.csv", "UTF-16", "iconv"],
         ["utf16_be_bom.csv"]),
    Case("utf-16 without BOM", _data("utf16_no_bom.csv"), ["utf16_no_bom.csv", "UTF-16", "iconv -f utf-16le"],
         ["utf16_no_bom.csv"]),
    Case("utf-32", _data("utf32.csv"), ["utf32.csv", "UTF-32", "iconv -f utf-32"], ["utf32.csv"]),
    Case("latin-1 bytes", _data("latin1.csv"), ["latin1.csv", "not valid utf-8", "line 16", "iconv -f latin1"],
         ["latin1.csv"]),
    Case("xlsx", _data("reviews.xlsx"), ["reviews.xlsx", "Excel workbook", "export the sheet as CSV"],
         ["reviews.xlsx"]),
    Case("ods", _data("reviews.ods"), ["reviews.ods", "OpenDocument spreadsheet", "export the sheet as CSV"],
         ["reviews.ods"]),
    Case("xlsx named .csv", _data("workbook_as.csv"), ["workbook_as.csv", "Excel workbook", "export the sheet"],
         ["workbook_as.csv"]),
    Case("ods named .csv", _data("sheet_as.csv"), ["sheet_as.csv", "OpenDocument spreadsheet", "export the sheet"],
         ["sheet_as.csv"]),
    Case("zip named .csv", _data("archive_as.csv"), ["archive_as.csv", "zip archive", "reviews.csv", "unzip"],
         ["archive_as.csv"]),
    Case("zip file", _data("reviews.zip"), ["reviews.zip", "unknown file type '.zip'"], ["reviews.zip"]),
    Case("old xls named .csv", _data("legacy_as.csv"), ["legacy_as.csv", "old-style Excel", "export the sheet"],
         ["legacy_as.csv"]),
    Case("gzip named .csv", _data("compressed.csv"), ["compressed.csv", "gzip-compressed", "gunzip"],
         ["compressed.csv"]),
    Case("parquet named .csv", _data("parquet_as.csv"), ["parquet_as.csv", "Parquet file", "parquet_as.parquet"],
         ["parquet_as.csv"]),
    Case("csv named .parquet", _data("not_parquet.parquet"), ["not_parquet.parquet", "cannot read as Parquet"],
         ["not_parquet.parquet"]),
    Case("pdf named .csv", _data("report_as.csv"), ["report_as.csv", "PDF document"], ["report_as.csv"]),
    Case("NUL bytes", _data("binary.csv"), ["binary.csv", "binary data", "NUL byte at offset 11"], ["binary.csv"]),
    Case("html page", _data("page.csv"), ["page.csv", "HTML page", "raw file"], ["page.csv"]),
    Case("semicolons", _data("semicolon.csv"), ["semicolon.csv", "no text column 'text'", "semicolon-separated"],
         ["semicolon.csv"]),
    Case("tabs in a .csv", _data("tab_separated.csv"), ["tab_separated.csv", "tab-separated", ".tsv"],
         ["tab_separated.csv"]),
    Case("ragged row", _data("ragged.csv"), ["ragged.csv", "cannot parse as CSV", "line 14", "quote fields"],
         ["ragged.csv"]),
    Case("bad json line", _data("bad_line.jsonl"), ["bad_line.jsonl", "line 13 is not valid JSON"], ["bad_line.jsonl"]),
    Case("json array", _data("array.jsonl"), ["array.jsonl", "line 1 is a JSON list"], ["array.jsonl"]),
    Case("too large", _data("good.csv"), ["good.csv", "STARTPOINT_MAX_DATASET_MB"], ["good.csv"],
         env={"STARTPOINT_MAX_DATASET_MB": "0.0001"}),
    # --- columns and labels
    Case("no label column", _data("no_label_column.csv"), ["no label column 'label'", "'stars'", "--label-col"],
         ["no_label_column.csv"]),
    Case("no text column", _data("no_text_column.csv"), ["no text column 'text'", "'review'", "--text-col"],
         ["no_text_column.csv"]),
    Case("wrong --label-col", _data("good.csv", "--label-col", "sentiment"), ["no label column 'sentiment'",
                                                                              "--label-col"], ["good.csv"]),
    Case("wrong --text-pair-col", _data("good.csv", "--text-pair-col", "hypothesis"),
         ["no text pair column 'hypothesis'", "--text-pair-col"], ["good.csv"]),
    Case("NaN labels", _data("nan_labels.csv"), ["nan_labels.csv", "rows 5, 18", "'NaN'", "missing-value marker"],
         ["nan_labels.csv"]),
    Case("None label", _data("none_label.csv"), ["none_label.csv", "row 3 ", "'None'", "real label"],
         ["none_label.csv"]),
    Case("null labels", _data("null_labels.csv"), ["rows 10, 11", "'NULL' / 'null'"], ["null_labels.csv"]),
    Case("JSON null labels", _data("null_label.jsonl"), ["null_label.jsonl", "row 4 has an empty label", "4, 9"],
         ["null_label.jsonl"]),
    Case("parquet None labels", _data("none_labels.parquet"), ["none_labels.parquet", "row 5 has an empty label",
                                                               "5, 12"], ["none_labels.parquet"]),
    Case("empty labels", _data("empty_labels.csv"), ["empty_labels.csv", "row 7 has an empty label", "7, 8"],
         ["empty_labels.csv"]),
    Case("list label", _data("list_label.jsonl"), ["list_label.jsonl", "row 6", "multi-label"], ["list_label.jsonl"]),
    Case("one class", _data("one_class.csv"), ["one_class.csv", "'pos'", "at least two classes"], ["one_class.csv"]),
    Case("unseen test label", _data("unseen_test_label.csv"), ["never seen in train", "row 21"],
         ["unseen_test_label.csv"]),
    Case("unknown split", _data("unknown_split.csv"), ["unknown split name(s) ['holdout']", "row 1"],
         ["unknown_split.csv"]),
    Case("no train split", _data("no_train_split.csv"), ["no 'train' rows"], ["no_train_split.csv"]),
    Case("escape sequence in a file name", _data("hostile\x1b[2Jname.csv"), ["hostile\\x1b[2jname.csv", "'NaN'"],
         ["hostile\x1b[2Jname.csv"]),
    # --- recommend options: refused before any training
    Case("--train-cap below the classes", _data("three_classes.csv", "--run", "--train-cap", "2"),
         ["--train-cap 2 is below the 3 classes", "three_classes.csv", "--train-cap 3"], ["three_classes.csv"]),
    Case("--train-cap 0", _data("good.csv", "--run", "--train-cap", "0"), ["--train-cap must be at least 1"],
         ["good.csv"]),
    Case("--seeds 0", _data("good.csv", "--run", "--seeds", "0"), ["--seeds must be at least 1"], ["good.csv"]),
    Case("--budget 0", _data("good.csv", "--run", "--budget", "0"), ["--budget must be at least 1"], ["good.csv"]),
    Case("--seeds not a number", _data("good.csv", "--seeds", "three"), ["--seeds", "invalid int value: 'three'",
                                                                         "--help"], ["good.csv"]),
    Case("--report is a directory", _data("good.csv", "--run", "--report", "{scratch}/out"),
         ["--report", "out", "is a directory", "report.json"], ["good.csv"], setup="out"),
    Case("--report under a file", _data("good.csv", "--run", "--report", "{scratch}/good.csv/report.json"),
         ["--report", "good.csv is a file, not a folder"], ["good.csv"]),
    Case("--report ends in a slash", _data("good.csv", "--report", "{scratch}/reports/"),
         ["--report", "names a folder"], ["good.csv"]),
    Case("--report in a read-only folder", _data("good.csv", "--run", "--report", "{readonly}/report.json"),
         ["--report", "cannot write in", "writable folder"], ["good.csv"]),
    Case("unknown architecture", _data("good.csv", "--architecture", "gpt-7"),
         ["no leaderboard for architecture 'gpt-7'", "roberta-base"], ["good.csv"]),
    Case("recommend without a warehouse", _data("good.csv"), ["no warehouse", "make run"], ["good.csv"],
         warehouse="none"),
    # --- leaderboard
    Case("leaderboard without a warehouse", ["leaderboard"], ["no warehouse at", "make run"], warehouse="none"),
    Case("leaderboard --top -1", ["leaderboard", "--top", "-1"], ["--top must be at least 1", "-1"]),
    Case("leaderboard --top 0", ["leaderboard", "--top", "0"], ["--top must be at least 1"]),
    Case("leaderboard unknown architecture", ["leaderboard", "--architecture", "bert-huge\x1b[31m"],
         ["no leaderboard for architecture", "\\x1b", "all-MiniLM-L6-v2"]),
    Case("leaderboard on a damaged warehouse", ["leaderboard"], ["is unreadable", "rebuild it from the lake", "make run"],
         warehouse="garbage"),
    Case("leaderboard on a warehouse without tables", ["leaderboard"], ["lacks a table", "make run"],
         warehouse="empty"),
    # --- site and model-card output folders
    Case("site --out is a file", ["site", "--out", "{scratch}/good.csv"], ["--out", "good.csv", "is a file"],
         ["good.csv"]),
    Case("site --out under a file", ["site", "--out", "{scratch}/good.csv/site"], ["--out", "is a file",
                                                                                   "choose another path"], ["good.csv"]),
    Case("site --out read-only", ["site", "--out", "{readonly}/site"], ["--out", "cannot write in",
                                                                         "writable folder"]),
    Case("site --out a foreign folder", ["site", "--out", "{scratch}/out"], ["not a startpoint site",
                                                                              "empty or new folder"], setup="out-full"),
    Case("site without a warehouse", ["site", "--out", "{scratch}/site"], ["no warehouse"], warehouse="none"),
    Case("model-card --out is a file", ["model-card", "--out", "{scratch}/good.csv"], ["--out", "is a file"],
         ["good.csv"]),
    Case("model-card --out read-only", ["model-card", "--out", "{readonly}/cards"], ["--out", "cannot write in"]),
    Case("model-card --top 0", ["model-card", "--top", "0", "--out", "{scratch}/cards"], ["--top must be at least 1"]),
    Case("unknown command", ["import-everything"], ["invalid choice", "--help"]),
]


def _prepare(case: Case, root: Path, fixture: Path) -> tuple[Path, Path, list[str], dict]:
    scratch = root / "scratch"
    home = root / "home"
    scratch.mkdir(parents=True)
    home.mkdir()
    for name in case.inputs:
        data = GENERATED[name] if name in GENERATED else (CORPUS / name).read_bytes()
        (scratch / name).write_bytes(data)
    if case.setup == "folder":
        (scratch / "folder").mkdir()
        (scratch / "folder" / "reviews.csv").write_bytes(_csv_bytes())
    elif case.setup == "out":
        (scratch / "out").mkdir()
    elif case.setup == "out-full":
        (scratch / "out").mkdir()
        (scratch / "out" / "thesis.tex").write_text("my thesis, not a site\n")
    if case.warehouse == "fixture":
        shutil.copyfile(fixture, home / "warehouse.duckdb")
    elif case.warehouse == "garbage":
        (home / "warehouse.duckdb").write_bytes(b"this is not a DuckDB file\n" * 100)
    elif case.warehouse == "empty":
        import duckdb

        duckdb.connect(str(home / "warehouse.duckdb")).close()
    readonly = _readonly_dir(scratch) if any("{readonly}" in a for a in case.argv) else None
    argv = [a.replace("{scratch}", str(scratch)).replace("{readonly}", str(readonly)) for a in case.argv]
    env = {k: v for k, v in os.environ.items()
           if k not in ("STARTPOINT_LAKE", "STARTPOINT_MAX_DATASET_MB", "STARTPOINT_PUBLISHED_RESULTS")}
    env.update({"STARTPOINT_HOME": str(home), "PYTHONPATH": str(REPO), "NO_COLOR": "1", **case.env})
    return scratch, home, argv, env


def _snapshot(*folders: Path) -> dict[str, str]:
    """Every file (and folder) under the folders, with its content hash: what must not change."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            key = str(path)
            out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    before: dict
    after: dict


# `python -m pipelines.cli ARGS` costs a second of imports (polars, scipy, duckdb) per case. The corpus runs through
# a zygote instead: one interpreter imports them once, then forks one child per case, which runs the module as
# `__main__` with the case's argv, environment, working directory and its own stdout/stderr files, and exits as the
# interpreter would (an uncaught exception prints its traceback and exits 1). FRESH cases also run in a fresh
# interpreter, to show both paths agree.
_ZYGOTE = r"""
import json, os, runpy, sys, traceback
import duckdb, polars, pipelines.cli, startpoint.data, startpoint.recommend, startpoint.site, startpoint.modelcard
jobs, workers = json.load(sys.stdin)
running, results = {}, {}
def reap():
    pid, status = os.wait()
    results[running.pop(pid)] = os.waitstatus_to_exitcode(status)
for key, job in jobs.items():
    while len(running) >= workers:
        reap()
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        rc = 70
        try:
            os.chdir(job["cwd"])
            os.environ.clear(); os.environ.update(job["env"])
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.argv = ["startpoint", *job["argv"]]
            try:
                runpy.run_module("pipelines.cli", run_name="__main__", alter_sys=True)
                rc = 0
            except SystemExit as exc:
                rc = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
                if not isinstance(exc.code, int) and exc.code is not None:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(rc)
    running[pid] = key
while running:
    reap()
json.dump(results, sys.stdout)
"""
FRESH = {"utf-16 with BOM", "NaN labels", "directory as data", "--report under a file",
         "--train-cap below the classes", "leaderboard --top -1", "site --out is a file", "unknown command"}


def _run_all(cases: list[tuple[str, Case]], root: Path, fixture: Path, fresh: bool) -> dict[str, Outcome]:
    prepared = {key: (case, *_prepare(case, root / f"case{i}", fixture)) for i, (key, case) in enumerate(cases)}
    before = {key: _snapshot(home, scratch) for key, (case, scratch, home, argv, env) in prepared.items()}
    files = {key: (root / f"case{i}" / "stdout.txt", root / f"case{i}" / "stderr.txt")
             for i, (key, _) in enumerate(cases)}
    python = [sys.executable]
    if fresh:
        codes = {}
        for key, (case, scratch, home, argv, env) in prepared.items():
            proc = subprocess.run([*python, "-m", "pipelines.cli", *argv], cwd=REPO, env=env, capture_output=True,
                                  timeout=120)
            files[key][0].write_bytes(proc.stdout)
            files[key][1].write_bytes(proc.stderr)
            codes[key] = proc.returncode
    else:
        jobs = {key: {"argv": argv, "env": env, "cwd": str(REPO), "stdout": str(files[key][0]),
                      "stderr": str(files[key][1])} for key, (case, scratch, home, argv, env) in prepared.items()}
        workers = max(2, os.cpu_count() or 2)
        proc = subprocess.run([*python, "-c", _ZYGOTE], cwd=REPO, input=json.dumps([jobs, workers]),
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr
        codes = json.loads(proc.stdout)
    out = {}
    for key, (case, scratch, home, argv, env) in prepared.items():
        after = _snapshot(home, scratch)
        locked = scratch / "locked"
        if locked.exists():
            locked.chmod(0o755)
        stdout, stderr = (f.read_bytes().decode("utf-8", "replace") for f in files[key])
        out[key] = Outcome(argv, codes[key], stdout, stderr, before[key], after)
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every case once through the zygote, and the FRESH ones again as `python -m pipelines.cli`."""
    root = tmp_path_factory.mktemp("bad-inputs")
    fixture = build(root / "fixture.duckdb")
    out = _run_all([(c.name, c) for c in CASES], root / "zygote", fixture, fresh=False)
    out.update(_run_all([(f"{c.name} (fresh)", c) for c in CASES if c.name in FRESH], root / "fresh", fixture,
                        fresh=True))
    return out


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES) and FRESH <= {c.name for c in CASES}
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "README.md"}
    used = {name for c in CASES for name in c.inputs}
    assert on_disk <= used | {"three_classes.csv", "good.csv"}, f"corpus files no case uses: {on_disk - used}"


RUNS = [(c.name, c) for c in CASES] + [(f"{c.name} (fresh)", c) for c in CASES if c.name in FRESH]


@pytest.mark.parametrize("key, case", RUNS, ids=[key for key, _ in RUNS])
def test_bad_input_is_refused_cleanly(outcomes, key, case):
    out = outcomes[key]
    shown = f"argv {out.argv}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.returncode != 0, shown
    assert "Traceback" not in out.stdout + out.stderr, shown
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, shown
    assert out.stderr.rstrip("\n").splitlines()[-1] == errors[0], "the error line comes last\n" + shown
    assert "\x1b" not in out.stderr + out.stdout, "a terminal escape reached the terminal\n" + shown
    line = errors[0].lower()
    for expected in case.expect:
        assert expected.lower() in line, f"{expected!r} not in the error line\n{shown}"
    assert out.stdout == "", shown
    assert out.after == out.before, "files were written, changed or removed\n" + shown


# --- published results: a hostile model id is a rejected row, the import goes on

HOSTILE_IDS = {
    "newline/in\nid": "control character (U+000A",
    "cr/in\rid": "control character (U+000D",
    "esc/\x1b[31mred": "control character (U+001B",
    "bidi/\u202egnp.exe": "bidirectional-text control (U+202E)",
    "isolate/\u2066x\u2069": "bidirectional-text control (U+2066)",
    "evil/<script>alert(1)</script>": "not a Hub model id",
    "tick/`code`": "not a Hub model id",
    "a/b/c": "2 '/'",
    "../../etc/passwd": "not a Hub model id",
    "org/x--y": "'--'",
    "org/" + "x" * 250: "the limit is 200",
    "org/na,me": "not a Hub model id",
    "org/name|pipe": "not a Hub model id",
    "org/spa ce": "not a Hub model id",
    "-org/name": "not a Hub model id",
}
GOOD_IDS = ["org/fine-model", "Org_2/model.v1_", "plainmodel", "summervent/speller-example__"]


def _published_folder(folder: Path) -> Path:
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    rows = [["0", "roberta-base", "70.0", "", "70.0", "90.0"]]
    for i, model in enumerate([*GOOD_IDS, *HOSTILE_IDS], start=1):
        rows.append([str(i), model, "71.0", "55.0", "71.0", "91.0"])
    with (folder / "roberta-base_table.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["", "model_name", "avg", "mnli_lp", "rte", "sst2"])
        w.writerows(rows)
    lines = ["\tdataset name\taccuracy\tloss\tspearmanr\tstage\tdir"]
    lines += [f"{k}\t{t}\t{0.70 if t == 'rte' else 0.90}\t0.1\t\t{s}\t/x" for k, (t, s) in
              enumerate((t, s) for t in ("rte", "sst2") for s in range(3))]
    (folder / "models_results_roberta_base_pretrain.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_hostile_published_ids_are_rejected_rows_not_a_stopped_import(tmp_path):
    from startpoint.keys import decode_key, encode_key
    from startpoint.published.importer import import_folder

    imported = import_folder(_published_folder(tmp_path / "published"), str(tmp_path / "lake"))
    arch = imported.architectures["roberta-base"]
    loaded = {m["model_id"] for m in arch.hub_models}
    assert loaded == {"roberta-base", *GOOD_IDS}
    rejected = {r["value"]: r["reason"] for r in arch.rejected_rows}
    for model, reason in HOSTILE_IDS.items():
        assert reason in rejected[model], (model, rejected.get(model))
        assert all(ch not in rejected[model] for ch in "\n\r\x1b\u202e\u2066")  # the reason itself is clean
    for counts in arch.counts:
        counts.check()
    for model in loaded:  # every accepted id is a partition key and back
        assert decode_key(encode_key(model)) == model


def test_every_shared_published_id_is_accepted():
    import csv

    from startpoint.keys import decode_key, encode_key
    from startpoint.published.reader import model_id_problem

    from published_fixture import SHARED

    tables = sorted(SHARED.glob("*_table.csv")) if SHARED.is_dir() else []
    if not tables:
        pytest.skip("needs ../shared/model-recycling")
    ids = {row["model_name"].strip() for t in tables for row in csv.DictReader(t.open(encoding="utf-8-sig"))}
    assert len(ids) > 1000
    refused = {m: model_id_problem(m) for m in ids if model_id_problem(m)}
    assert refused == {}
    assert all(decode_key(encode_key(m)) == m for m in ids)


# --- every output escapes for its medium

def test_model_card_markdown_escapes_hostile_ids():
    import polars as pl

    from startpoint.modelcard.export import markdown_section

    fields = "model_id architecture rank n_targets mean_gain ci_low ci_high win_rate avg_score pretrained_avg".split()
    row = dict(zip(fields, ("`<script>alert(1)</script>`\u202e", "arch`\x1b[31m", 1, 2, 1.0, 0.5, 1.5, 0.5, 80.0, 79.0)))
    gains = pl.DataFrame({"dataset_id": ["<img src=x onerror=alert(1)>", "a|b"], "metric": ["accuracy", "<b>m</b>"],
                          "score_mean": [80.0, 81.0], "baseline_mean": [79.0, 80.0], "gain": [1.0, 1.0]})
    text = markdown_section(row, gains, 5, "https://example.org/")
    heading = text.splitlines()[0]
    assert heading.startswith("## Finetuning from `` `<script>alert(1)</script>`\\u202e `` (``arch`\\x1b[31m``)")
    assert "\x1b" not in text and "\u202e" not in text
    body = text.split("\n", 1)[1].replace("`` `<script>alert(1)</script>`\\u202e ``", "")  # the code span is inert
    assert not re.search(r"(?<!\\)[<|](?:img|b>|/b>|b\b)", body.replace("| ", "  ").replace(" |", "  "))
    assert "\\<img src=x onerror=alert(1)\\>" in body and "a\\|b" in body


def test_dagster_markdown_text_escapes_markup():
    from startpoint.tables import markdown_table, markdown_text

    cell = markdown_text('evil/<script>alert("x")</script>&co`\n# heading')
    assert "<script>" not in cell and "\n" not in cell and "`" not in cell.replace("\\`", "")
    assert markdown_table(["model"], [(cell,)]).count("\n") == 3


def test_recommend_prints_ids_and_paths_escaped(tmp_path, monkeypatch, capsys):
    """A file name with an escape sequence reaches the terminal as text, in the log lines and the answer."""
    from pipelines.cli import main

    home = tmp_path / "home"
    home.mkdir()
    build(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    data = tmp_path / "my\x1b]0;pwned\x07reviews.csv"
    data.write_bytes(_csv_bytes(_good_rows(60)))
    assert main(["recommend", "--data", str(data), "--architecture", ARCH]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and "\x07" not in captured.out + captured.err
    assert "Decision:" in captured.out


def test_a_report_that_fails_at_the_end_keeps_the_decision(tmp_path, monkeypatch, capsys):
    """--report passed the up-front check, then writing failed (disk full, say): the decision is still printed,
    one error line follows, and no half-written report or temporary file is left."""
    from pipelines.cli import main

    home = tmp_path / "home"
    home.mkdir()
    build(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    data = tmp_path / "reviews.csv"
    data.write_bytes(_csv_bytes(_good_rows(60)))
    out = tmp_path / "out"
    out.mkdir()

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert main(["recommend", "--data", str(data), "--architecture", ARCH, "--report", str(out / "r.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1].startswith("Decision: ")
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "decision is printed above" in errors[0]
    assert list(out.iterdir()) == []
