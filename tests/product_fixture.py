"""A small warehouse with the analytic tables of issue 2, for the recommend / site / model-card tests.

Gains follow an additive model (base effect + target effect + interaction noise) so the derived tables are
mutually consistent, like the dbt models make them: the gain is the mean over the cells, the ranking score the
two-way random-effects posterior of sql/models/base_model_effects.sql and ranking_reliability.sql (without the
winsorizing: the fixture's gains are Gaussian), the pretrained model a ranked row with gain 0 ("stay"), with the
paired comparison against rank 1. Two architectures; model names include HTML and path
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
FLAG_REASON = (
    "off the target profile: its scores correlate r=0.41 with the per-target median of the architecture's models "
    "(genuine rows: r >= 0.8); values likely under the wrong target columns"
)
Z975 = 1.959964

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
        """create table model_flags(architecture varchar, model_id varchar, n_targets bigint, profile_corr double,
           n_collapsed bigint, shifted boolean, flagged boolean, flag_reason varchar)"""
    )
    con.execute(
        """create table base_model_effects(architecture varchar, model_id varchar, is_pretrained boolean,
           n_targets bigint, mean_gain double, median_gain double, ci_low double, ci_high double, win_rate double,
           n_collapsed bigint, model_effect double, shrinkage double, ranking_score double, rank bigint,
           order_has_evidence boolean, n_shared_with_rank1 bigint, diff_vs_rank1 double,
           diff_vs_rank1_low double, diff_vs_rank1_high double, p_better_than_rank1 double,
           tied_with_rank1 boolean, tied boolean, flagged boolean)"""
    )
    con.execute(
        """create table ranking_reliability(architecture varchar, n_models bigint, n_targets bigint, n_cells bigint,
           var_base double, var_residual double, reliability double, f_statistic double, f_p_value double,
           order_has_evidence boolean, clip double)"""
    )
    con.execute(
        """create table target_effects(architecture varchar, dataset_id varchar, n_models bigint, mean_gain double,
           max_gain double, baseline_mean double, baseline_sd double)"""
    )
    con.execute(
        """create table variance_decomposition(architecture varchar, component varchar, variance double,
           variance_low double, variance_high double, share double, share_low double, share_high double,
           n_models bigint, n_targets bigint, n_replicates bigint)"""
    )
    con.execute("create table proxy_validation(architecture varchar, method varchar, n_models bigint, spearman double, pearson double)")
    con.execute(
        """create table leaderboard(architecture varchar, rank bigint, model_id varchar, is_pretrained boolean,
           avg_score double, pretrained_avg double, mean_gain double, ci_low double, ci_high double,
           ranking_score double, reliability double, order_has_evidence boolean, p_better_than_rank1 double,
           tied_with_rank1 boolean, tied boolean, best_is_pretrained boolean, median_gain double, win_rate double,
           n_targets bigint, n_collapsed bigint, probe_score double, probe_dataset varchar, flagged boolean,
           flag_reason varchar)"""
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
        by_model: dict[str, list[float]] = {}
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
            by_model[model_id] = gains
            n_collapsed = 5 if flagged else 0
            con.execute(
                "insert into model_flags values (?, ?, ?, ?, ?, ?, ?, ?)",
                [arch, model_id, len(gains), 0.41 if flagged else 0.97, n_collapsed, flagged, flagged,
                 FLAG_REASON if flagged else None],
            )
        ranking, reliability = _ranking({m: g for m, g in by_model.items() if m != FLAGGED_MODEL}, pretrained)
        con.execute(
            "insert into ranking_reliability values (?, ?, ?, ?, ?, ?, ?, null, null, ?, 1.5)",
            [arch, reliability["n_models"], len(TARGETS), reliability["n_cells"], reliability["var_base"],
             reliability["var_residual"], reliability["reliability"], reliability["var_base"] > 0],
        )
        for model_id, gains in [*by_model.items(), (pretrained, [0.0] * len(TARGETS))]:
            is_pretrained = model_id == pretrained
            mean = sum(gains) / len(gains)
            sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (len(gains) - 1))
            half = 2.306 * sd / math.sqrt(len(gains))
            median = sorted(gains)[len(gains) // 2]
            win = sum(g > 0 for g in gains) / len(gains)
            r = ranking.get(model_id, {})
            con.execute(
                "insert into base_model_effects values "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [arch, model_id, is_pretrained, len(gains), mean, median, mean - half, mean + half,
                 None if is_pretrained else win, 5 if model_id == FLAGGED_MODEL else 0, r.get("effect"),
                 r.get("shrinkage"), r.get("score"), r.get("rank"), reliability["var_base"] > 0, r.get("n_shared"),
                 r.get("diff"), r.get("diff_low"), r.get("diff_high"), r.get("p_better"), r.get("tied"),
                 r.get("tied"), model_id == FLAGGED_MODEL],
            )
        con.execute(
            """insert into target_effects
               select g.architecture, g.dataset_id, count(*), avg(g.gain), max(g.gain), any_value(baseline_mean),
                      any_value(baseline_sd)
               from gains g where g.architecture = ? and g.model_id <> ? group by all""",
            [arch, FLAGGED_MODEL],
        )
        for component, share, low, high in (
            ("base", 0.3, 0.18, 0.45), ("target", 0.5, 0.35, 0.62), ("interaction", 0.15, 0.08, 0.24),
            ("noise", 0.05, 0.03, 0.08),
        ):
            con.execute(
                "insert into variance_decomposition values (?, ?, ?, ?, ?, ?, ?, ?, 7, ?, 3)",
                [arch, component, 10 * share, 10 * low, 10 * high, share, low, high, len(TARGETS)],
            )
        con.execute("insert into proxy_validation values (?, 'linear_probe', 8, 0.81, 0.77)", [arch])
        pretrained_avg = sum(t[5] for t in TARGETS.values()) / len(TARGETS)
        con.execute(
            """insert into leaderboard
               select b.architecture, b.rank, b.model_id, b.is_pretrained, ? + b.mean_gain, ?,
                      b.mean_gain, b.ci_low, b.ci_high, b.ranking_score, r.reliability, b.order_has_evidence,
                      b.p_better_than_rank1, b.tied_with_rank1, b.tied,
                      bool_or(b.is_pretrained and b.rank = 1) over (), b.median_gain, b.win_rate, b.n_targets,
                      b.n_collapsed, p.score, p.proxy_dataset, b.flagged, f.flag_reason
               from base_model_effects b
               left join model_flags f using (architecture, model_id)
               left join ranking_reliability r using (architecture)
               left join probe_scores p using (architecture, model_id)
               where b.architecture = ?
               order by b.rank nulls last, b.mean_gain desc""",
            [pretrained_avg, pretrained_avg, arch],
        )
    con.close()


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _ranking(gains: dict[str, list[float]], pretrained: str) -> tuple[dict[str, dict], dict]:
    """The two-way random-effects ranking of the dbt models on complete data (every model on every target), the
    pretrained model a row of zeros scored with the models' target means."""
    models = list(gains)
    n_m, n_t = len(models), len(next(iter(gains.values())))
    target_means = [sum(gains[m][t] for m in models) / n_m for t in range(n_t)]
    effects = {m: sum(gains[m][t] - target_means[t] for t in range(n_t)) / n_t for m in models}
    sse = sum((gains[m][t] - target_means[t] - effects[m]) ** 2 for m in models for t in range(n_t))
    var_residual = sse / (n_m * n_t - n_m - n_t + 1)
    mean_effect = sum(effects.values()) / n_m
    var_effects = sum((e - mean_effect) ** 2 for e in effects.values()) / (n_m - 1)
    var_base = var_effects - var_residual / n_t
    reliability = var_base / (var_base + var_residual / n_t) if var_base > 0 else 0.0
    shrinkage = var_base / (var_base + var_residual / n_t) if var_base > 0 else 0.0
    grand = sum(target_means) / n_t
    gains = {**gains, pretrained: [0.0] * n_t}
    effects[pretrained] = -grand
    out = {m: {"effect": effects[m], "shrinkage": shrinkage, "score": grand + shrinkage * effects[m]} for m in gains}
    for rank, m in enumerate(sorted(gains, key=lambda m: -out[m]["score"]), 1):
        out[m]["rank"] = rank
    top = next(m for m in gains if out[m]["rank"] == 1)
    for m in gains:
        d = [gains[m][t] - gains[top][t] for t in range(n_t)]
        out[m]["n_shared"] = n_t
        if m == top:
            out[m]["tied"] = True
            continue
        diff = sum(d) / n_t
        se = math.sqrt(sum((x - diff) ** 2 for x in d) / (n_t - 1) / n_t)
        out[m].update(diff=diff, diff_low=diff - Z975 * se, diff_high=diff + Z975 * se,
                      p_better=_normal_cdf(diff / se), tied=abs(diff) <= Z975 * se)
    summary = {"n_models": n_m, "n_cells": n_m * n_t, "var_base": var_base, "var_residual": var_residual,
               "reliability": reliability}
    return out, summary
