"""A small warehouse with the analytic tables of issue 2, for the recommend / site / model-card tests.

Gains follow an additive model (base effect + target effect + interaction noise) so the derived tables are
mutually consistent, like the dbt models make them. Two architectures; model names include HTML and path
characters, because model ids are untrusted input.
"""

from __future__ import annotations

import atexit
import math
import random
import shutil
import tempfile
from pathlib import Path

import duckdb

HOSTILE_MODEL = 'evil/<script>alert("x")</script>&co'
FLAGGED_MODEL = "shifty/collapsed-run"

TARGETS = {
    # dataset_id: (metric, task_group, n_train, n_labels, majority_share, baseline score, target effect)
    "sst2": ("accuracy", "sentiment", 67349, 2, 0.56, 94.0, 0.3),
    "rte": ("accuracy", "nli", 2490, 2, 0.50, 72.0, 6.0),
    "cb": ("accuracy", "nli", 250, 3, 0.46, 68.0, 9.0),
    "trec_coarse": ("accuracy", "topic", 5452, 6, 0.23, 97.0, 0.0),
    "tweet_ev_irony": ("accuracy", "twitter", 2862, 2, 0.50, 71.0, 3.0),
    "stsb": ("spearman", "other", 5749, 1, 0.0, 90.0, 1.0),
    "copa": ("accuracy", "other", 400, 2, 0.50, 49.0, 12.0),
    "ag_news": ("accuracy", "topic", 120000, 4, 0.25, 89.7, 0.1),
    "mrpc": ("accuracy", "nli", 3668, 2, 0.68, 87.0, 1.5),
}


def _models(arch: str) -> list[tuple[str, float]]:
    """(model_id, base effect) for the intermediates of an architecture, best first."""
    models = [(f"org{i}/{arch}-inter-{i}", 2.5 - 0.5 * i) for i in range(6)]
    models.insert(2, (HOSTILE_MODEL, 0.9))
    return models


_CACHE: dict[tuple[str, ...], Path] = {}


def build(path: Path, architectures: tuple[str, ...] = ("roberta-base", "all-MiniLM-L6-v2")) -> Path:
    """Write the fixture warehouse to `path` (a .duckdb file) and return it; built once per process, then copied."""
    if architectures not in _CACHE:
        folder = tempfile.mkdtemp(prefix="product-fixture-")
        atexit.register(shutil.rmtree, folder, True)
        cache = Path(folder) / "warehouse.duckdb"
        _build(cache, architectures)
        _CACHE[architectures] = cache
    shutil.copyfile(_CACHE[architectures], path)
    return path


def _build(path: Path, architectures: tuple[str, ...]) -> None:
    rng = random.Random(7)
    con = duckdb.connect(str(path))
    con.execute(
        """create table hub_models(model_id varchar, architecture varchar, model_type varchar, n_params bigint,
           last_modified timestamptz, source varchar, role varchar, flagged boolean, flag_reason varchar)"""
    )
    con.execute(
        """create table datasets(dataset_id varchar, metric varchar, task_group varchar, n_train bigint,
           n_labels bigint, majority_share double)"""
    )
    con.execute(
        """create table finetune_runs(run_id varchar, model_id varchar, architecture varchar, dataset_id varchar,
           seed bigint, score double, metric varchar, origin varchar, recipe varchar, status varchar)"""
    )
    con.execute(
        "create table probe_scores(model_id varchar, architecture varchar, proxy_dataset varchar, method varchar, score double)"
    )
    con.execute(
        """create table gains(architecture varchar, model_id varchar, dataset_id varchar, n_seeds bigint,
           score_mean double, baseline_mean double, baseline_sd double, gain double, gain_se double)"""
    )
    con.execute(
        """create table base_model_effects(architecture varchar, model_id varchar, n_targets bigint, mean_gain double,
           median_gain double, ci_low double, ci_high double, win_rate double, robust_score double, rank bigint)"""
    )
    con.execute(
        """create table target_effects(architecture varchar, dataset_id varchar, n_models bigint, mean_gain double,
           max_gain double, baseline_mean double, baseline_sd double)"""
    )
    con.execute("create table variance_decomposition(architecture varchar, component varchar, sum_sq double, fraction double)")
    con.execute("create table proxy_validation(architecture varchar, method varchar, n_models bigint, spearman double, pearson double)")
    con.execute(
        """create table leaderboard(architecture varchar, rank bigint, model_id varchar, avg_score double,
           pretrained_avg double, mean_gain double, ci_low double, ci_high double, win_rate double, n_targets bigint,
           probe_score double, flagged boolean, flag_reason varchar)"""
    )
    for ds, (metric, group, n_train, n_labels, majority, _, _) in TARGETS.items():
        con.execute("insert into datasets values (?, ?, ?, ?, ?, ?)", [ds, metric, group, n_train, n_labels, majority])

    for arch in architectures:
        pretrained = "sentence-transformers/all-MiniLM-L6-v2" if arch == "all-MiniLM-L6-v2" else arch
        con.execute(
            "insert into hub_models values (?, ?, 'bert', 110000000, '2023-01-01', 'published', 'pretrained', false, null)",
            [pretrained, arch],
        )
        for ds, (metric, *_rest, base_score, _) in TARGETS.items():
            for seed in range(3):
                con.execute(
                    "insert into finetune_runs values (?, ?, ?, ?, ?, ?, ?, 'published', 'published', 'ok')",
                    [f"{arch}|{pretrained}|{ds}|{seed}", pretrained, arch, ds, seed, base_score + rng.gauss(0, 0.5), metric],
                )
        models = _models(arch) + [(FLAGGED_MODEL, -30.0)]
        for model_id, base_effect in models:
            flagged = model_id == FLAGGED_MODEL
            con.execute(
                "insert into hub_models values (?, ?, 'bert', 110000000, '2023-02-01', 'published', 'intermediate', ?, ?)",
                [model_id, arch, flagged, "collapsed run: constant score on 5 targets" if flagged else None],
            )
            con.execute(
                "insert into probe_scores values (?, ?, 'mnli', 'linear_probe', ?)", [model_id, arch, 60 + 3 * base_effect]
            )
            gains = []
            for ds, (metric, _g, _n, _l, _m, base_score, target_effect) in TARGETS.items():
                gain = base_effect + target_effect + rng.gauss(0, 1.0)
                gains.append(gain)
                con.execute(
                    "insert into finetune_runs values (?, ?, ?, ?, 0, ?, ?, 'published', 'published', 'ok')",
                    [f"{arch}|{model_id}|{ds}|0", model_id, arch, ds, base_score + gain, metric],
                )
                con.execute(
                    "insert into gains values (?, ?, ?, 1, ?, ?, 0.5, ?, 0.55)",
                    [arch, model_id, ds, base_score + gain, base_score, gain],
                )
            mean = sum(gains) / len(gains)
            sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (len(gains) - 1))
            half = 2.306 * sd / math.sqrt(len(gains))
            median = sorted(gains)[len(gains) // 2]
            win = sum(g > 0 for g in gains) / len(gains)
            con.execute(
                "insert into base_model_effects values (?, ?, ?, ?, ?, ?, ?, ?, ?, null)",
                [arch, model_id, len(gains), mean, median, mean - half, mean + half, win, mean - half / 2],
            )
        con.execute(
            """update base_model_effects b set rank = r.rank from (
                 select model_id, row_number() over (order by robust_score desc) as rank
                 from base_model_effects where architecture = ? and model_id <> ?) r
               where b.architecture = ? and b.model_id = r.model_id""",
            [arch, FLAGGED_MODEL, arch],
        )
        con.execute(
            """insert into target_effects
               select g.architecture, g.dataset_id, count(*), avg(g.gain), max(g.gain), any_value(baseline_mean),
                      any_value(baseline_sd)
               from gains g where g.architecture = ? and g.model_id <> ? group by all""",
            [arch, FLAGGED_MODEL],
        )
        for component, frac in (("base", 0.3), ("target", 0.5), ("interaction", 0.15), ("noise", 0.05)):
            con.execute("insert into variance_decomposition values (?, ?, ?, ?)", [arch, component, 1000 * frac, frac])
        con.execute("insert into proxy_validation values (?, 'linear_probe', 8, 0.81, 0.77)", [arch])
        pretrained_avg = sum(t[5] for t in TARGETS.values()) / len(TARGETS)
        con.execute(
            """insert into leaderboard
               select b.architecture, b.rank, b.model_id, ? + b.mean_gain, ?, b.mean_gain, b.ci_low, b.ci_high,
                      b.win_rate, b.n_targets, p.score, h.flagged, h.flag_reason
               from base_model_effects b
               join hub_models h using (architecture, model_id)
               left join probe_scores p using (architecture, model_id)
               where b.architecture = ?""",
            [pretrained_avg, pretrained_avg, arch],
        )
    con.close()
