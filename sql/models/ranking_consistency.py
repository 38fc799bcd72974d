"""Do the targets agree on which starting points are good? If they do, a ranking measured on some targets carries
over to a new one; if not, "the best base model" depends on the target (Choshen et al. 2023). docs/analyses.md.

Over the unflagged models with a gain on every target of the architecture (the complete block; no imputation):
  kendalls_w: Kendall's coefficient of concordance of the targets' rankings of the models. Each target ranks the
    models by raw gain with average ranks for ties; W = 12 S / (T^2 (M^3 - M) - T sum_t sum_ties (t^3 - t)), S the
    sum over models of (rank sum - T (M + 1) / 2)^2: 1 = every target orders the models alike, 0 = no agreement.
  half_spearman: for n_splits deterministic random half splits of the targets, the Spearman correlation (average
    ranks) between the models' mean gains on one half and on the other; the mean over splits and its 2.5 / 97.5
    percentiles (linear interpolation, as quantile_cont; the spread over splits, not a confidence interval). Split k
    orders the targets by md5(k || ':' || dataset_id) and puts the first floor(T / 2) in half A, the rest in half B.
    n_splits is the dbt var `consistency_splits` (default 100).

Why Python: the figures are ranks of the models in every target and in every half of every split. As SQL that was
four window sorts over models x splits rows (8.5M at 18M runs, the slowest node of `dbt build`,
benchmarks/results/warehouse_scale.json); here the half means are one matrix product and the ranks numpy sorts
(no scipy: its import alone cost more than the whole model on a small warehouse).
The block (unflagged, complete models) is selected in SQL on the model's own connection.
"""

import hashlib

import numpy as np
import pyarrow as pa

BLOCK = """
create or replace temp table _rc_cells as
with cells as (
    select g.architecture, g.model_id, g.dataset_id, g.gain
    from _rc_gains g
    join _rc_flags f using (architecture, model_id)
    where not f.flagged
),
n_targets as (select architecture, count(distinct dataset_id) as t from cells group by all),
complete as (
    select c.architecture, c.model_id from cells c join n_targets n using (architecture)
    group by all having count(*) = any_value(n.t)
),
models as (
    select architecture, model_id, row_number() over (partition by architecture order by model_id) - 1 as mi
    from complete
)
select c.architecture, m.mi, c.dataset_id, c.gain from cells c join models m using (architecture, model_id);
create or replace temp table _rc_targets as
select architecture, dataset_id, row_number() over (partition by architecture order by dataset_id) - 1 as tj,
       dense_rank() over (order by architecture) - 1 as a
from (select distinct architecture, dataset_id from _rc_cells)
"""

SCHEMA = pa.schema([("architecture", pa.string()), ("n_models", pa.int64()), ("n_targets", pa.int64()),
                    ("kendalls_w", pa.float64()), ("half_spearman", pa.float64()),
                    ("half_spearman_low", pa.float64()), ("half_spearman_high", pa.float64()),
                    ("n_splits", pa.int64())])


def _average_ranks(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks of v with ties given their average rank (SQL: rank() + (tie size - 1) / 2), and the tie sizes."""
    order = np.argsort(v, kind="stable")
    ordered = v[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0 + 1.0, ends - starts)
    return ranks, ends - starts


def _ranks_by_column(x: np.ndarray) -> np.ndarray:
    return np.column_stack([_average_ranks(x[:, j])[0] for j in range(x.shape[1])])


def _columnwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of a with the same column of b (NaN for a constant column, as corr())."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def _figures(x: np.ndarray, targets: list[str], n_splits: int) -> dict:
    m, t = x.shape
    ranks = np.empty((m, t))
    tie_sum = 0.0
    for j in range(t):
        ranks[:, j], sizes = _average_ranks(x[:, j])
        tie_sum += float((sizes.astype(np.float64) ** 3 - sizes).sum())
    s_dev = ((ranks.sum(axis=1) - t * (m + 1) / 2.0) ** 2).sum()
    masks = np.zeros((n_splits, t))
    for k in range(n_splits):
        order = sorted(range(t), key=lambda j: hashlib.md5(f"{k}:{targets[j]}".encode()).hexdigest())
        masks[k, order[: t // 2]] = 1.0
    n_a, n_b = t // 2, t - t // 2
    mean_a = x @ masks.T / n_a  # M x splits
    mean_b = x @ (1.0 - masks).T / n_b
    rho = _columnwise_corr(_ranks_by_column(mean_a), _ranks_by_column(mean_b))
    return {"n_models": m, "n_targets": t,
            "kendalls_w": 12 * s_dev / (t ** 2 * (m ** 3 - m) - t * tie_sum),
            "half_spearman": float(np.mean(rho)),
            "half_spearman_low": float(np.quantile(rho, 0.025)),
            "half_spearman_high": float(np.quantile(rho, 0.975)),
            "n_splits": n_splits}


def model(dbt, session):
    dbt.config(materialized="table")
    n_splits = int(dbt.config.get("consistency_splits") or 100)
    # the inputs as names this connection alone sees (nothing is created in the warehouse but the table)
    session.register("_rc_gains", dbt.ref("gains"))
    session.register("_rc_flags", dbt.ref("model_flags"))
    session.execute(BLOCK)
    targets = session.execute("select a, architecture, tj, dataset_id from _rc_targets order by a, tj").fetchall()
    cells = session.execute("select t.a, c.mi, t.tj, c.gain from _rc_cells c "
                            "join _rc_targets t using (architecture, dataset_id)").fetchnumpy()
    a_col, mi, tj = (np.asarray(cells[k], dtype=np.int64) for k in ("a", "mi", "tj"))
    gain = np.asarray(cells["gain"], dtype=np.float64)
    rows = []
    for a in sorted({row[0] for row in targets}):
        architecture = next(row[1] for row in targets if row[0] == a)
        names = [row[3] for row in targets if row[0] == a]
        here = a_col == a
        m, t = int(mi[here].max()) + 1, len(names)
        if m < 3 or t < 2:
            continue
        x = np.empty((m, t))
        x[mi[here], tj[here]] = gain[here]
        rows.append({"architecture": architecture, **_figures(x, names, n_splits)})
    for name in ("_rc_cells", "_rc_targets"):
        session.execute(f"drop table if exists {name}")
    for name in ("_rc_gains", "_rc_flags"):
        session.unregister(name)
    return pa.Table.from_pylist(rows, schema=SCHEMA)
