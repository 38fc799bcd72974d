"""Read a folder of published finetuning results in the model-recycling format.

Files (see the folder's README): `<arch>_table.csv` (one row per model, percent scores on its targets; row 0 is the
pretrained model whose cells are seed means), `models_results_<arch>_pretrain.csv` (seeds of the pretrained model,
fractions) and an optional `models_tested.csv` (catalog attributes of every model looked at).

A table's targets are its columns after `model_name, avg, mnli_lp`: any subset of the paper's 36 (see targets.py)
and targets of the user's own suite. An unknown target's metric comes from its seeds in the pretrain file
(`accuracy` or `spearmanr` filled); one whose seeds do not say raises an error naming the target.

Errors that make a whole file unusable (missing, empty, not UTF-8, another format, duplicated or nameless columns,
a target with no known metric, a target column mostly in fractions while row 0 and the seeds are in percent, a file
name that is not row 0's architecture, a row 0 that is not the mean of the seeds beside it, a table from which no
score survives, e.g. decimal commas) raise :class:`PublishedFormatError` naming the file and line, before anything is
written. Problems confined to a row or a cell (non-numeric value, score out of range, duplicated model, wrong field
count, a model id that is not a Hub id: see :func:`model_id_problem`; a row in fractions; a row of another
architecture, by its pretrained id or the catalog's base_model) become `rejected_rows` entries, and every row and cell
read is accounted for in :class:`FileCounts`. The probe's dataset (mnli) gets a `datasets` row (source
`published_probe`) when no target is mnli.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from startpoint.hub.architectures import pretrained_architecture, warehouse_model_id
from startpoint.published.targets import METRIC, TARGETS, TASK_GROUP, metric_range
from startpoint.schema import finetune_run_id

TABLE_SUFFIX = "_table.csv"
TABLE_HEAD = ["", "model_name", "avg", "mnli_lp"]
PRETRAIN_COLUMNS = ["", "dataset name", "accuracy", "loss", "spearmanr", "stage", "dir"]
PRETRAIN_SCORE = {"accuracy": "accuracy", "spearman": "spearmanr"}  # metric -> its score column in a pretrain file
CATALOG_FILE = "models_tested.csv"
CATALOG_REQUIRED = ["model_name", "base_model", "size", "model_type", "layers", "last_modified", "mnli_lp"]

PROBE_DATASET = "mnli"  # the dataset the published linear probe (mnli_lp) is scored on
RECIPE = "model-recycling"  # the recipe of every published run: the model-recycling project's own


class PublishedFormatError(ValueError):
    """A file that cannot be read at all; the message names the file, the line and what to do."""

    def __init__(self, path: Path, line: int | None, problem: str):
        where = f"{path}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line = path, line


@dataclass
class FileCounts:
    """What happened to every row and cell of one file. rows_read = rows_loaded + rows_rejected;
    cells_read = cells_loaded + cells_rejected + cells_empty + cells_derived (+ cells_confirmed for the catalog)."""

    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    cells_read: int = 0
    cells_loaded: int = 0
    cells_rejected: int = 0
    cells_empty: int = 0
    cells_derived: int = 0
    cells_confirmed: int = 0

    def check(self) -> None:
        """Every row and cell read is accounted for; anything else is a bug in the reader, never silent."""
        cells = self.cells_loaded + self.cells_rejected + self.cells_empty + self.cells_derived + self.cells_confirmed
        if self.rows_read != self.rows_loaded + self.rows_rejected or self.cells_read != cells:
            raise RuntimeError(f"import counts do not add up: {self}")


@dataclass
class ImportedArchitecture:
    architecture: str
    table_targets: list[str] = field(default_factory=list)  # the table's target columns, in file order
    metrics: dict[str, str] = field(default_factory=dict)  # target -> metric, for the table's and the seeds' targets
    hub_models: list[dict] = field(default_factory=list)
    finetune_runs: list[dict] = field(default_factory=list)
    probe_scores: list[dict] = field(default_factory=list)
    rejected_rows: list[dict] = field(default_factory=list)
    counts: list[FileCounts] = field(default_factory=list)
    row0_max_abs_diff: float = 0.0  # table row 0 vs the mean of the pretrain seeds, in points
    pretrained_name: str = ""  # row 0's model name as the table writes it


@dataclass
class ImportedFolder:
    architectures: dict[str, ImportedArchitecture]
    catalog_rejected: list[dict]
    catalog_counts: FileCounts | None
    datasets: list[dict]


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise PublishedFormatError(path, None, "file not found; the folder must hold it (see the format README)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PublishedFormatError(path, line, f"not UTF-8 text (byte {exc.start}); is this a CSV export?") from None
    if not text.strip():
        raise PublishedFormatError(path, None, "file is empty; re-export it from the results")
    return text


def _number(text: str) -> float | None:
    """Parse a score cell; None for a non-numeric or non-finite value."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _reject(file: Path, line: int, column: str | None, value: str | None, reason: str) -> dict:
    return {"file": file.name, "line": line, "column": column, "value": value, "reason": reason, "origin": "published"}


def pretrain_file_name(architecture_slug: str) -> str:
    return f"models_results_{re.sub(r'[-/]', '_', architecture_slug)}_pretrain.csv"


def discover(folder: Path) -> list[Path]:
    """The `<arch>_table.csv` files of a folder, sorted; a folder with none is an error."""
    if not folder.is_dir():
        raise PublishedFormatError(folder, None, "folder not found; set STARTPOINT_PUBLISHED_RESULTS to a results folder")
    tables = sorted(folder.glob(f"*{TABLE_SUFFIX}"))
    if not tables:
        raise PublishedFormatError(folder, None, f"no *{TABLE_SUFFIX} file; is this a model-recycling results folder?")
    return tables


def _pretrain_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a pretrain file with their line numbers, after checking its header."""
    reader = csv.reader(io.StringIO(_read_text(path)), delimiter="\t")
    header = next(reader)
    if header != PRETRAIN_COLUMNS:
        raise PublishedFormatError(
            path, 1, f"expected tab-separated columns {PRETRAIN_COLUMNS}, found {header[:8]}; not a pretrain results file"
        )
    return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]


def target_metrics(pretrain: Path, table_targets: list[str], table: Path | None = None) -> dict[str, str]:
    """The metric of every target of a table and of its pretrain file.

    A known target's comes from targets.py. An unknown target's comes from its seed rows in the pretrain file:
    `spearman` if they carry `spearmanr`, `accuracy` if they carry `accuracy` (a row with both or neither says
    nothing). A target whose rows say neither, or say both, raises one error naming every such target and the fix.
    """
    said: dict[str, dict[str, int]] = defaultdict(dict)  # target -> metric -> first line saying it
    rows: dict[str, int] = {}  # target -> first seed line
    for line, row in _pretrain_rows(pretrain):
        target = row[1].strip() if len(row) == len(PRETRAIN_COLUMNS) else ""
        if not target:
            continue  # a malformed row: read_pretrain rejects it with its reason
        rows.setdefault(target, line)
        carried = [metric for metric, col in PRETRAIN_SCORE.items() if row[PRETRAIN_COLUMNS.index(col)].strip()]
        if len(carried) == 1:
            said[target].setdefault(carried[0], line)
    metrics: dict[str, str] = {}
    problems: list[str] = []
    for target in dict.fromkeys([*table_targets, *rows]):
        found = said.get(target, {})
        if target in METRIC:
            metrics[target] = METRIC[target]
        elif len(found) == 1:
            metrics[target] = next(iter(found))
        else:
            problems.append(_unknown_metric(target, pretrain, rows.get(target), found, table, table_targets))
    if problems:
        raise PublishedFormatError(pretrain, None, "; ".join(problems))
    return metrics


def _unknown_metric(
    target: str, pretrain: Path, first: int | None, found: dict[str, int], table: Path | None, table_targets: list[str]
) -> str:
    """Why an unknown target has no metric, and what to do about it."""
    where = f" (a column of {table.name})" if table is not None and target in table_targets else ""
    if first is None:
        return (
            f"target {target!r}{where} has no seed rows in {pretrain.name}, so its metric is unknown; add its "
            "pretrained seeds (accuracy or spearmanr), or rename the column to a known target"
        )
    if found:
        lines = " and ".join(f"{PRETRAIN_SCORE[m]} (line {n})" for m, n in found.items())
        return f"target {target!r}{where} has seed rows in {pretrain.name} with {lines}, so its metric is ambiguous; " \
            "score all its seeds with one of the two"
    return (
        f"target {target!r}{where} has seed rows in {pretrain.name} (first at line {first}) that each carry both "
        "accuracy and spearmanr or neither, so its metric is unknown; fill exactly one of the two in each row"
    )


def read_pretrain(
    path: Path, architecture: str, metrics: dict[str, str] | None = None, *, pretrained_model: str | None = None
) -> tuple[list[dict], list[dict], FileCounts]:
    """Seed finetunes of the pretrained model: one run per (target, seed). `metrics` (from :func:`target_metrics`)
    gives each target's metric; by default only the 36 known targets are accepted. `pretrained_model`: the
    model's id in the warehouse (default: the architecture, which a table names by its pretrained model)."""
    metrics = METRIC if metrics is None else metrics
    model_id = pretrained_model or architecture
    runs, rejected = [], []
    counts = FileCounts(file=path.name)
    seen: dict[tuple[str, int], int] = {}
    for line, row in _pretrain_rows(path):
        counts.rows_read += 1
        problem = None
        if len(row) != len(PRETRAIN_COLUMNS):
            problem = (None, None, f"{len(row)} fields, the header has {len(PRETRAIN_COLUMNS)}")
        else:
            target, stage = row[1].strip(), row[5].strip()
            metric_col = PRETRAIN_SCORE[metrics.get(target, "accuracy")]
            raw_score = row[PRETRAIN_COLUMNS.index(metric_col)].strip()
            score = _number(raw_score)
            if not target:
                problem = ("dataset name", target, "empty dataset name")
            elif target not in metrics:
                problem = ("dataset name", target, f"unknown target {target!r}; known: {', '.join(TARGETS)}")
            elif not stage.isdigit():
                problem = ("stage", stage, "seed (stage) is not a non-negative integer")
            elif score is None:
                problem = (metric_col, raw_score, "score is not a number")
            elif not _in_range(score * 100, metrics[target]) or abs(score) > 1:
                problem = (metric_col, raw_score, "score outside the metric's range (expected a fraction)")
            elif (target, int(stage)) in seen:
                problem = ("stage", stage, f"duplicate seed for {target}: first at line {seen[(target, int(stage))]}")
        if problem:
            counts.rows_rejected += 1
            rejected.append(_reject(path, line, problem[0], problem[1], problem[2]))
            continue
        seed = int(stage)
        seen[(target, seed)] = line
        counts.rows_loaded += 1
        runs.append(
            {
                "run_id": finetune_run_id("published", architecture, model_id, target, RECIPE, seed),
                "model_id": model_id,
                "architecture": architecture,
                "dataset_id": target,
                "seed": seed,
                "score": score * 100,
                "metric": metrics[target],
                "origin": "published",
                "recipe": RECIPE,
                "status": "ok",
                "source_file": path.name,
                "source_line": line,
            }
        )
    return runs, rejected, counts


def _in_range(value: float, metric: str) -> bool:
    low, high = metric_range(metric)
    return low <= value <= high


def table_targets(path: Path, header: list[str] | None = None) -> list[str]:
    """The target columns of a table (everything after `model_name, avg, mnli_lp`), after checking its header.
    Any targets will do, known or not; a header of another format, a nameless or a duplicated column will not."""
    if header is None:
        header = next(csv.reader(io.StringIO(_read_text(path))))
    if header[:4] != TABLE_HEAD:
        hint = " (it looks tab-separated)" if "\t" in ",".join(header) else ""
        raise PublishedFormatError(
            path, 1, f"expected a header starting with {','.join(TABLE_HEAD)}, found {','.join(header[:4])}{hint}; "
            "not a model-recycling table"
        )
    targets = [column.strip() for column in header[4:]]
    nameless = [i for i, t in enumerate(targets, start=len(TABLE_HEAD) + 1) if not t]
    if nameless:
        raise PublishedFormatError(path, 1, f"column(s) {nameless} have no name; name each target column or drop it")
    dup = sorted({t for t in targets if targets.count(t) > 1})
    if dup:
        raise PublishedFormatError(path, 1, f"duplicated column(s) {dup}")
    return targets


MAX_MODEL_ID = 200
# A Hub id: `name` or `owner/name`; each part letters, digits and - _ . , not starting or ending with - or . .
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"{_HUB_PART}(?:/{_HUB_PART})?")
_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}


def model_id_problem(model: str) -> str | None:
    """Why a published model id is refused (it becomes a lake path, a partition key, a page name and a line on a
    terminal), or None. Accepted: Hub ids, `owner/name` or `name`, of letters, digits and - _ . (no `--` or `..`),
    at most MAX_MODEL_ID characters."""
    for ch in model:
        code = ord(ch)
        if code in _BIDI:
            return f"model id holds a bidirectional-text control (U+{code:04X}), which can disguise what it shows"
        if code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029":
            return f"model id holds a control character (U+{code:04X}: a line break, tab or escape)"
    if len(model) > MAX_MODEL_ID:
        return f"model id is {len(model)} characters long; the limit is {MAX_MODEL_ID}"
    if not _HUB_ID.fullmatch(model):
        bad = sorted({ch for ch in model if not (ch.isascii() and (ch.isalnum() or ch in "-_./"))})
        what = f"the character(s) {' '.join(bad)!r}" if bad else (
            f"{model.count('/')} '/'" if model.count("/") > 1 else "a part that starts or ends with - . / or is empty")
        return f"not a Hub model id: it has {what}; a Hub id is owner/name of letters, digits, - _ ."
    if "--" in model or ".." in model:
        return "not a Hub model id: it holds '--' or '..', which Hub ids cannot (and '--' encodes '/' in keys)"
    return None


def _row_problem(row: list[str], n_fields: int, model: str, seen: dict[str, int]) -> str | None:
    """Why a whole table row cannot be read, or None."""
    if len(row) != n_fields:
        return f"{len(row)} fields, the header has {n_fields}"
    if not model:
        return "empty model_name"
    problem = model_id_problem(model)
    if problem:
        return problem
    if model in seen:
        return f"duplicate model row for {model!r}: first at line {seen[model]}; the first row is kept"
    return None


def _pretrained_row(
    path: Path, line: int, row: list[str], problem: str | None, targets: list[str]
) -> tuple[ImportedArchitecture, dict[str, float]]:
    """Row 0, the pretrained model: it names the architecture; its cells are seed means (checked by the caller)."""
    if problem:
        raise PublishedFormatError(path, line, f"the pretrained model's row is unusable: {problem}")
    if row[3].strip():
        raise PublishedFormatError(
            path, line, "the first row must be the pretrained model (with an empty mnli_lp); found a probed model"
        )
    architecture, model = _table_ids(row[1].strip())
    result = ImportedArchitecture(architecture=architecture, table_targets=list(targets),
                                  pretrained_name=row[1].strip())
    result.hub_models.append(
        {"model_id": model, "architecture": architecture, "source": "published", "role": "pretrained",
         "status": "accepted"}
    )
    row0 = {t: v for t, v in ((t, _number(cell)) for t, cell in zip(targets, row[4:])) if v is not None}
    avg = _number(row[2])
    row0["avg"] = avg if avg is not None else float("nan")
    return result, row0


def _table_ids(pretrained: str) -> tuple[str, str]:
    """(architecture, warehouse model id) of a table's pretrained model: a known one under any of its ids (say
    `FacebookAI/roberta-base`) is its architecture's name and `pretrained_id`, as in the Hub catalog's rows;
    another model names its own architecture, as published tables do."""
    spec = pretrained_architecture(pretrained)
    return (spec.name, spec.pretrained_id) if spec else (pretrained, pretrained)


def _cell_value(cell: str, metric: str) -> tuple[float | None, str | None]:
    """A score cell in percent: (value, None), (None, reason) when rejected, (None, None) when empty."""
    if not cell:
        return None, None
    value = _number(cell)
    if value is None:
        return None, "not a number"
    if not _in_range(value, metric):
        low, high = metric_range(metric)
        return None, f"outside [{low:g}, {high:g}] (scores are in percent)"
    return value, None


def _model_row(result: ImportedArchitecture, path: Path, line: int, row: list[str], model: str,
               metrics: dict[str, str], counts: FileCounts, baselines: dict[str, float] | None = None) -> None:
    """One finetuned model's row (`model`: its warehouse id): its probe score and one single-seed run per filled
    target cell."""
    arch = result.architecture
    result.hub_models.append(
        {"model_id": model, "architecture": arch, "source": "published", "role": "intermediate", "status": "accepted"}
    )
    counts.cells_derived += 1  # avg: the mean over targets, recomputed by the SQL models
    for column, cell in [("mnli_lp", row[3]), *zip(result.table_targets, row[4:])]:
        cell = cell.strip()
        metric = "accuracy" if column == "mnli_lp" else metrics[column]
        value, reason = _cell_value(cell, metric)
        baseline = (baselines or {}).get(column)
        if not reason and metric == "accuracy" and column != "mnli_lp" and _fraction_like(value, baseline):
            reason = (f"looks like a fraction ({value:g} where the pretrained model scores {baseline:.1f}): scale "
                      "mismatch; write it in percent (x100)")
            value = None
        if reason:
            counts.cells_rejected += 1
            result.rejected_rows.append(_reject(path, line, column, cell, reason))
        elif value is None:
            counts.cells_empty += 1
        elif column == "mnli_lp":
            counts.cells_loaded += 1
            result.probe_scores.append(
                {"model_id": model, "architecture": arch, "proxy_dataset": PROBE_DATASET, "method": "linear_probe",
                 "score": value, "origin": "published"}
            )
        else:
            counts.cells_loaded += 1
            result.finetune_runs.append(
                {
                    "run_id": finetune_run_id("published", arch, model, column, RECIPE, None),
                    "model_id": model,
                    "architecture": arch,
                    "dataset_id": column,
                    "seed": None,  # one unnamed seed per published finetune
                    "score": value,
                    "metric": metric,
                    "origin": "published",
                    "recipe": RECIPE,
                    "status": "ok",
                    "source_file": path.name,
                    "source_line": line,
                }
            )


FRACTION_BASELINE = 10.0  # a target whose pretrained scores exceed this (percent) cannot score within [-1, 1]
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def _fraction_like(value: float | None, baseline: float | None) -> bool:
    """A percent cell that looks like a fraction: within [-1, 1] on a target the pretrained model scores well above
    that (in percent)."""
    return value is not None and baseline is not None and abs(baseline) > FRACTION_BASELINE and abs(value) <= 1


def _scale_problem(path: Path, rows: list[tuple[int, list[str]]], targets: list[str], n_fields: int,
                   baselines: dict[str, float], row0: dict[str, float]) -> None:
    """Refuse the file when a target column is mostly on the fraction scale while the pretrained row and its seeds
    are in percent: the column (or the table) was exported on another scale, which no row can fix."""
    bad: list[str] = []
    for i, target in enumerate(targets, start=len(TABLE_HEAD)):
        values = [_number(row[i].strip()) for _, row in rows if len(row) == n_fields and row[i].strip()]
        values = [v for v in values if v is not None]
        small = sum(_fraction_like(v, baselines.get(target)) for v in values)
        if len(values) >= 3 and small * 2 > len(values):
            r0 = row0.get(target)
            bad.append(f"{target!r} ({small} of {len(values)} model scores within [-1, 1], pretrained row "
                       f"{'n/a' if r0 is None else f'{r0:.1f}'}, seed mean {baselines[target]:.1f})")
    if bad:
        what = "every target column" if len(bad) == len(targets) else f"column(s) {', '.join(bad)}"
        detail = f": {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}" if len(bad) == len(targets) else ""
        raise PublishedFormatError(
            path, None, f"scale mismatch in {what}{detail}: the model rows are fractions while the pretrained row and "
            "its seeds are percent; write every score in percent (multiply the fractions by 100) and import again")


def _fraction_row(row: list[str], targets: list[str], baselines: dict[str, float]) -> str | None:
    """Why a model row is on the fraction scale, or None: at least two filled target cells, all within [-1, 1],
    where the pretrained model scores above FRACTION_BASELINE."""
    cells = [(t, _number(c.strip())) for t, c in zip(targets, row[len(TABLE_HEAD):]) if c.strip()]
    judged = [(t, v) for t, v in cells if v is not None and baselines.get(t) is not None
              and abs(baselines[t]) > FRACTION_BASELINE]
    if len(judged) >= 2 and all(abs(v) <= 1 for _, v in judged):
        t, v = judged[0]
        return (f"scores are fractions (e.g. {t} {v:g} where the pretrained model scores {baselines[t]:.1f}): "
                "scale mismatch; write the row in percent (x100)")
    return None


def _foreign_problem(model: str, architecture: str, catalog: dict[str, set[str]] | None,
                     covered: set[str]) -> str | None:
    """Why a model row belongs to another architecture, or None: it is another architecture's pretrained model,
    or the catalog (which describes this architecture) gives it only other base models."""
    spec = pretrained_architecture(model)
    if spec is not None and spec.name != architecture:
        return (f"{model!r} is the pretrained {spec.name} model, not a model finetuned from {architecture}; "
                f"another architecture's row: move it to {spec.name}{TABLE_SUFFIX}")
    bases = (catalog or {}).get(model)
    if bases and architecture in covered and architecture not in bases:
        return (f"{CATALOG_FILE} gives {model!r} the base model {', '.join(sorted(bases))}, not {architecture}: "
                f"another architecture's row; move it to that architecture's {TABLE_SUFFIX} or fix its base_model")
    return None


def _no_score_survives(path: Path, result: ImportedArchitecture) -> PublishedFormatError:
    """The error for a table whose model rows gave no score at all, with the likeliest cause."""
    cells = [r for r in result.rejected_rows if r["column"] is not None]
    commas = [r for r in cells if r["value"] and DECIMAL_COMMA.match(r["value"].strip())]
    if commas:
        first = commas[0]
        hint = (f"decimal commas? {len(commas)} cell(s) like {first['value']!r} (line {first['line']}, column "
                f"{first['column']}); write {first['value'].replace(',', '.')!r} (a dot) and import again")
    elif result.rejected_rows:
        first = result.rejected_rows[0]
        hint = f"first at line {first['line']}: {first['reason']}; fix the rows and import again"
    else:
        hint = "every score cell is empty; fill the table and import again"
    return PublishedFormatError(
        path, None, f"no score survives the import ({len(result.rejected_rows)} rejected row(s)/cell(s)): {hint}")


def read_table(path: Path, metrics: dict[str, str] | None = None, *, baselines: dict[str, float] | None = None,
               catalog: dict[str, set[str]] | None = None) -> tuple[ImportedArchitecture, dict[str, float]]:
    """One architecture's table: finetune runs, probe scores and model rows; returns row 0's values too.
    `metrics` (from :func:`target_metrics`) gives each target column's metric; by default only known targets.
    `baselines`: the seed mean of each target in percent (default: row 0's values), against which a scale
    mismatch is detected. `catalog`: model -> its catalog base models' architectures (:func:`catalog_base_models`);
    a row the catalog gives only to other architectures is rejected."""
    reader = csv.reader(io.StringIO(_read_text(path)))
    header = next(reader)
    targets = table_targets(path, header)
    if metrics is None:
        metrics = METRIC
    unresolved = [t for t in targets if t not in metrics]
    if unresolved:
        raise PublishedFormatError(path, 1, f"no metric for target column(s) {unresolved}; read the folder with "
                                   "read_folder, which takes unknown targets' metrics from the pretrain file")
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise PublishedFormatError(path, 2, "no data rows: the table must hold at least the pretrained model's row")
    counts = FileCounts(file=path.name)
    result: ImportedArchitecture | None = None
    row0: dict[str, float] = {}
    base: dict[str, float] = {}
    covered = set().union(*catalog.values()) if catalog else set()
    seen: dict[str, int] = {}
    for line, row in rows:
        counts.rows_read += 1
        counts.cells_read += max(len(row) - 2, 0)  # index and model name are identifiers, not cells
        named = row[1].strip() if len(row) > 1 else ""
        model = warehouse_model_id(named)
        problem = _row_problem(row, len(header), model, seen)
        if problem and model != named:
            problem += f" ({named!r} is another id of {model!r})"
        if result is None:
            result, row0 = _pretrained_row(path, line, row, problem, targets)
            counts.cells_derived += len(row) - 2
            base = {t: v for t, v in row0.items() if t != "avg"} | dict(baselines or {})
            _scale_problem(path, rows[1:], targets, len(header), base, row0)
            seen[model] = line
            counts.rows_loaded += 1
            continue
        problem = (problem or _foreign_problem(model, result.architecture, catalog, covered)
                   or _fraction_row(row, targets, base))
        if problem:
            counts.rows_rejected += 1
            counts.cells_rejected += max(len(row) - 2, 0)
            result.rejected_rows.append(_reject(path, line, None, named or None, problem))
            continue
        _model_row(result, path, line, row, model, metrics, counts, base)
        seen[model] = line
        counts.rows_loaded += 1
    assert result is not None
    if counts.rows_read > 1 and counts.cells_loaded == 0:
        raise _no_score_survives(path, result)
    result.metrics = {t: metrics[t] for t in targets}
    counts.check()
    result.counts.append(counts)
    return result, row0


def catalog_base_models(folder: Path) -> dict[str, set[str]]:
    """model id -> the architectures the catalog's `base_model` gives it; empty without a readable catalog (whose
    format errors :func:`read_catalog` reports)."""
    path = folder / CATALOG_FILE
    if not path.is_file():
        return {}
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    if not {"model_name", "base_model"} <= set(reader.fieldnames or []):
        return {}
    found: dict[str, set[str]] = defaultdict(set)
    for rec in reader:
        name, base = (rec.get("model_name") or "").strip(), (rec.get("base_model") or "").strip()
        if name and base:
            found[warehouse_model_id(name)].add(_table_ids(base)[0])
    return dict(found)


def read_catalog(path: Path, imported: dict[str, ImportedArchitecture]) -> tuple[list[dict], FileCounts]:
    """Attach catalog attributes (size, type, layers, last modified) and cross-check the catalog's copy of scores."""
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in CATALOG_REQUIRED if c not in header]
    if missing:
        raise PublishedFormatError(path, 1, f"missing column(s) {missing}; not a models_tested file")
    known = set(METRIC).union(*(imp.metrics for imp in imported.values()))
    score_cols = [c for c in header if c in known]
    extra = [c for c in header if c not in known and c not in CATALOG_REQUIRED]
    counts = FileCounts(file=path.name)
    rejected: list[dict] = []
    by_model = {
        arch: {m["model_id"]: m for m in imp.hub_models} for arch, imp in imported.items()
    }
    table_scores = {
        arch: {(r["model_id"], r["dataset_id"]): r["score"] for r in imp.finetune_runs}
        for arch, imp in imported.items()
    }
    table_probe = {arch: {r["model_id"]: r["score"] for r in imp.probe_scores} for arch, imp in imported.items()}
    seen: dict[tuple[str, str], int] = {}
    for rec in reader:
        line = reader.line_num
        counts.rows_read += 1
        n_cells = len(header) - 2  # model_name and base_model identify the row
        counts.cells_read += n_cells
        arch = _table_ids((rec.get("base_model") or "").strip())[0]
        model = warehouse_model_id((rec.get("model_name") or "").strip())
        if None in rec or any(v is None for v in rec.values()):
            problem = "field count differs from the header"
        elif model and model_id_problem(model):
            problem = model_id_problem(model)
        elif arch not in by_model:
            problem = f"architecture {arch!r} has no {arch}{TABLE_SUFFIX} in the folder; row not imported"
        elif model not in by_model[arch]:
            problem = f"model {model!r} is not in {arch}{TABLE_SUFFIX}; the table is the record, row not imported"
        elif (arch, model) in seen:
            problem = f"duplicate catalog row: first at line {seen[(arch, model)]}"
        else:
            problem = None
        if problem:
            counts.rows_rejected += 1
            counts.cells_rejected += n_cells
            rejected.append(_reject(path, line, None, model or None, problem))
            continue
        seen[(arch, model)] = line
        counts.rows_loaded += 1
        target = by_model[arch][model]
        for column, key, cast in (("size", "n_params", int), ("layers", "n_layers", int)):
            value = _number(rec[column]) if rec[column] else None
            if rec[column] and value is None:
                counts.cells_rejected += 1
                rejected.append(_reject(path, line, column, rec[column], "not a number"))
            elif value is None:
                counts.cells_empty += 1
            else:
                counts.cells_loaded += 1
                target[key] = cast(value)
        for column, key in (("model_type", "model_type"), ("last_modified", "last_modified")):
            if rec[column]:
                counts.cells_loaded += 1
                target[key] = rec[column] if column == "model_type" else _timestamp(rec[column])
            else:
                counts.cells_empty += 1
        counts.cells_derived += len(extra)  # tokenizer, flags: descriptive copies, not imported
        # Score copies: the table is the record; agreeing copies are confirmed, disagreeing ones rejected.
        for column in ["mnli_lp", *score_cols]:
            cell = (rec[column] or "").strip()
            if column != "mnli_lp" and column not in imported[arch].table_targets:
                counts.cells_derived += 1  # a target this architecture's table does not hold: not imported
                continue
            if not cell:
                counts.cells_empty += 1
                continue
            value = _number(cell)
            reference = table_probe[arch].get(model) if column == "mnli_lp" else table_scores[arch].get((model, column))
            if value is None:
                counts.cells_rejected += 1
                rejected.append(_reject(path, line, column, cell, "not a number"))
            elif reference is None or abs(value * 100 - reference) > 0.01:
                counts.cells_rejected += 1
                ref = "no value" if reference is None else f"{reference:.4f}"
                rejected.append(
                    _reject(path, line, column, cell, f"disagrees with {arch}{TABLE_SUFFIX} ({ref}); the table value is kept")
                )
            else:
                counts.cells_confirmed += 1
    counts.check()
    return rejected, counts


def _timestamp(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_folder(folder: Path) -> ImportedFolder:
    """Read every architecture of a folder. Raises PublishedFormatError for unusable files.

    Each architecture's targets are its table's columns plus the targets of its pretrain seeds; an unknown
    target's metric comes from those seeds (:func:`target_metrics`)."""
    imported: dict[str, ImportedArchitecture] = {}
    pretrain_files: dict[str, Path] = {}
    catalog = catalog_base_models(folder)
    for table in discover(folder):
        slug = table.name[: -len(TABLE_SUFFIX)]
        pretrain = folder / pretrain_file_name(slug)
        metrics = target_metrics(pretrain, table_targets(table), table)
        arch_result, row0 = read_table(table, metrics, baselines=_seed_means(read_pretrain(pretrain, slug, metrics)[0]),
                                       catalog=catalog)
        arch = arch_result.architecture
        _check_file_name(table, pretrain, slug, arch_result)
        if arch in imported:
            raise PublishedFormatError(table, 2, f"architecture {arch!r} already read from another table file")
        runs, rejected, counts = read_pretrain(pretrain, arch, metrics,
                                               pretrained_model=arch_result.hub_models[0]["model_id"])
        if not runs:
            raise PublishedFormatError(pretrain, None, "no usable baseline seeds; the gains need them")
        arch_result.metrics = metrics
        arch_result.finetune_runs.extend(runs)
        arch_result.rejected_rows.extend(rejected)
        arch_result.counts.append(counts)
        means = _seed_means(runs)
        diffs = {t: abs(m - row0[t]) for t, m in means.items() if t in row0}
        arch_result.row0_max_abs_diff = max(diffs.values(), default=0.0)
        _check_row0_against_seeds(table, pretrain, arch, diffs, row0, means)
        imported[arch] = arch_result
        pretrain_files[arch] = pretrain
    catalog_rejected: list[dict] = []
    catalog_counts = None
    if (folder / CATALOG_FILE).exists():
        catalog_rejected, catalog_counts = read_catalog(folder / CATALOG_FILE, imported)
    return ImportedFolder(imported, catalog_rejected, catalog_counts, _datasets(imported, pretrain_files))


ROW0_SEED_TOLERANCE = 0.5  # points: row 0 holds the seed means, so its median distance to them is ~0


def _seed_means(runs: list[dict]) -> dict[str, float]:
    by_target: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        by_target[r["dataset_id"]].append(r["score"])
    return {t: sum(v) / len(v) for t, v in by_target.items()}


def _norm_name(name: str) -> str:
    return re.sub(r"[-/]", "_", name).lower()


def _check_file_name(table: Path, pretrain: Path, slug: str, result: ImportedArchitecture) -> None:
    """The file name, row 0 (the pretrained model) and the seeds file (named after the file) must name one
    architecture: a table saved under another architecture's name would take that architecture's seeds."""
    spec = pretrained_architecture(result.architecture)
    names = {result.pretrained_name, result.architecture, result.hub_models[0]["model_id"],
             *(spec.base_model_ids if spec else ())}
    if _norm_name(slug) not in {_norm_name(n) for n in names if n}:
        right = result.architecture.replace("/", "_")
        raise PublishedFormatError(
            table, 2, f"row 0 is the pretrained model {result.pretrained_name!r} but the file name says {slug!r} "
            f"(and {pretrain.name} holds {slug}'s seeds): rename the table to {right}{TABLE_SUFFIX} beside "
            f"{pretrain_file_name(result.architecture)}, or fix row 0")


def _check_row0_against_seeds(table: Path, pretrain: Path, arch: str, diffs: dict[str, float],
                              row0: dict[str, float], means: dict[str, float]) -> None:
    """Row 0's cells are the means of the pretrain seeds: a table and a seeds file that disagree on most targets
    belong to different models, and every gain would be taken over the wrong baseline."""
    if not diffs:
        return
    ordered = sorted(diffs.values())
    half = len(ordered) // 2
    median = ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2
    if median > ROW0_SEED_TOLERANCE:
        worst = max(diffs, key=diffs.get)
        raise PublishedFormatError(
            table, 2, f"row 0 ({arch}) disagrees with the seeds in {pretrain.name}: median |row 0 - seed mean| "
            f"{median:.2f} points over {len(diffs)} targets (worst {worst}: {row0[worst]:.2f} vs {means[worst]:.2f}); "
            "the table and the seeds are not the same pretrained model: pair each table with its own seeds file")


def _datasets(imported: dict[str, ImportedArchitecture], pretrain_files: dict[str, Path]) -> list[dict]:
    """One row per target of any table or pretrain file of the folder; a target has one metric in a folder."""
    first: dict[str, tuple[str, str]] = {}  # target -> (metric, architecture that set it)
    for arch, result in imported.items():
        for target, metric in result.metrics.items():
            other = first.setdefault(target, (metric, arch))
            if other[0] != metric:
                raise PublishedFormatError(
                    pretrain_files[arch], None,
                    f"target {target!r} is scored by {metric} here but by {other[0]} in "
                    f"{pretrain_files[other[1]].name}; a target has one metric in a folder: fix the seeds or "
                    "rename one of the two targets",
                )
    rows = [
        {"dataset_id": t, "metric": m, "task_group": TASK_GROUP.get(t), "source": "published"}
        for t, (m, _) in sorted(first.items())
    ]
    # The probe (mnli_lp) is scored on mnli: its dataset gets a row of its own when no table or seeds target it,
    # marked as the probe's dataset (source `published_probe`), so a suite without mnli keeps its probe scores valid.
    if PROBE_DATASET not in first and any(r.probe_scores for r in imported.values()):
        rows.append({"dataset_id": PROBE_DATASET, "metric": "accuracy", "task_group": TASK_GROUP.get(PROBE_DATASET),
                     "source": "published_probe"})
    return sorted(rows, key=lambda r: r["dataset_id"])
