"""Variance components of the gain, per architecture: base model, target, their interaction and seed noise, each
with a 95% bootstrap interval (method and figures: docs/variance.md).

Scale: the raw gain in points (`gains.gain`, the kept cell's mean score less the robust pretrained baseline), never
the winsorized `gain_w`; every variance is in points squared.
Data: the kept rows and kept cells. Rows: the unflagged models (`model_flags`). Cells: the gains that did not
collapse (`gains.collapsed` is not true); a collapsed cell is missing, never imputed. The design is a complete
block: the architecture's targets are those with a kept cell, and the models are the unflagged ones with a kept
cell on every one of them, so a model with a collapsed (or missing) cell is left out whole. n_models / n_targets
say what was used, n_models_unflagged and n_models_with_collapsed what was left out. For comparison,
variance_all_cells / share_all_cells are the point estimates on the block that keeps collapsed cells (the
unflagged models with a gain on every target, collapsed or not); they show how much the collapsed cells move the
figures and have no interval.
Point estimates: two-way ANOVA without replication, models and targets random, on the M x T gains:
  MS_model = SS_model / (M - 1), MS_target = SS_target / (T - 1), MS_resid = SS_resid / ((M - 1)(T - 1));
  base = (MS_model - MS_resid) / T, target = (MS_target - MS_resid) / M;
  noise = the variance a cell's gain has between reruns, baseline_robust_sd^2 / n_seeds, averaged over the cells:
          baseline_robust_sd is the SD of the healthy pretrained seeds only (collapsed seeds left out by gains.sql;
          a target with fewer than 2 healthy seeds has none and is left out of the average); the baseline mean is
          shared by a target column and cancels in the residual, and with independent cell errors
          E[MS_resid] = interaction + mean cell noise variance exactly;
  interaction = MS_resid - noise.
Estimates are reported as they come: one may be negative (`negative` is then true); only the shares floor the
components at 0: share = max(component, 0) / sum of max(component, 0).
Intervals: percentile bootstrap over models AND targets, resampled independently with replacement (M models and T
targets per replicate), components recomputed on the resampled block. The draws are hash-based
(DuckDB's hash(replicate, architecture, 'model' | 'target', position) mod M | T), so the table is reproducible from
the warehouse. Replicate 0 is the data itself (every model and target once) and gives the point estimates.
An interval that cannot be estimated is NULL, never a made-up [0, 0]: when the block has fewer than MIN_MODELS
models or MIN_TARGETS targets, when fewer than 95% of the replicates give the figure (no seed noise known in the
drawn cells), or when the percentile interval does not hold the point estimate (e.g. a positive share whose
replicates are all floored at 0). A replicate in which a component is unknown has no shares.
A replicate is computed from weights: u = how often a model is drawn, w = how often a target is drawn; with
N = M T, S = sum u w x, R_m = sum_t w x (row sum), C_t = sum_m u x (column sum):
  SS_total = sum u w x^2 - S^2/N, SS_model = sum_m u R_m^2 / T - S^2/N, SS_target = sum_t w C_t^2 / M - S^2/N.
x is the gain less the architecture's grand mean (shift invariant; keeps the sums well conditioned).

Why Python: the replicates are matrix products (the (B+1) x M draw counts U times the M x T block X, and X times
the (B+1) x T target counts W), B M T multiply-adds, a fraction of a second in numpy at 10^5 models. As SQL they were
rows of models x replicates carrying M-long weight lists, which ran out of memory at 18M runs
(benchmarks/results/warehouse_scale.json). The block, the draws (DuckDB's hash), the comparison block, the
quantiles and every rule above stay SQL, run on the model's own connection.
"""

import numpy as np
import pyarrow as pa

N_REPLICATES = 400
MIN_MODELS = 10
MIN_TARGETS = 5

# The four variance components of a two-way random ANOVA without replication, one row each, from a row's mean
# squares (ms_model, ms_target, ms_resid), seed noise and block size (m models, t targets), as a lateral join;
# a value that is not finite (a 0/0 on a block of one model or target) is NULL.
VARIANCE_COMPONENTS = """lateral (select * from (values
        ('base', case when isfinite((ms_model - ms_resid) / t) then (ms_model - ms_resid) / t end),
        ('target', case when isfinite((ms_target - ms_resid) / m) then (ms_target - ms_resid) / m end),
        ('interaction', case when isfinite(ms_resid - noise) then ms_resid - noise end),
        ('noise', case when isfinite(noise) then noise end)
    ) v(component, variance))"""

# The kept rows (unflagged models); kept = the cell did not collapse.
KEPT_ROWS = """
create or replace temp table _vd_g as
select g.architecture, g.model_id, g.dataset_id, g.gain, g.collapsed is not true as kept,
       g.baseline_robust_sd ^ 2 / g.n_seeds as noise_var
from _vd_gains g
join _vd_flags f using (architecture, model_id)
where not f.flagged
"""

# The complete block with integer keys: a = architecture, mi / tj = the model's / target's position (0-based, by
# name) in the block; dims holds M, T and the grand mean per architecture.
BLOCK = """
create or replace temp table _vd_cells as
with n_targets as (select architecture, count(distinct dataset_id) as t from _vd_g where kept group by all),
complete as (
    -- the models with a kept cell on every target that has one
    select g.architecture, g.model_id from _vd_g g join n_targets n using (architecture)
    where g.kept
    group by all having count(distinct g.dataset_id) = any_value(n.t)
),
models as (
    select architecture, model_id, row_number() over (partition by architecture order by model_id) - 1 as mi
    from complete
),
targets as (
    select architecture, dataset_id, row_number() over (partition by architecture order by dataset_id) - 1 as tj
    from (select distinct g.architecture, g.dataset_id from _vd_g g semi join complete c using (architecture) where g.kept)
)
select g.architecture, m.mi, t.tj, g.gain, g.noise_var
from _vd_g g join models m using (architecture, model_id) join targets t using (architecture, dataset_id)
where g.kept;
create or replace temp table _vd_dims as
select *, row_number() over (order by architecture) - 1 as a
from (select architecture, count(distinct mi) as m, count(distinct tj) as t, avg(gain) as grand
      from _vd_cells group by all)
"""

DRAWS = """
select b, (hash(b, $architecture, $axis, i) % $n::ubigint)::bigint as k
from range(1, $replicates + 1) r(b), range(0, $n) p(i)
"""

RESULT = """
with left_out as (
    select architecture, count(distinct model_id) as n_models_unflagged,
           count(distinct model_id) filter (where not kept) as n_models_with_collapsed
    from _vd_g group by all
),
-- the comparison block: collapsed cells kept (the unflagged models with a gain on every target); point estimates only
all_t as (select architecture, count(distinct dataset_id) as t from _vd_g group by all),
all_cells as (
    select g.* from _vd_g g
    semi join (
        select g.architecture, g.model_id from _vd_g g join all_t n using (architecture)
        group by all having count(distinct g.dataset_id) = any_value(n.t)
    ) c using (architecture, model_id)
),
all_grand as (
    select architecture, avg(gain) as grand, count(distinct model_id) as m, count(distinct dataset_id) as t,
           sum(gain * gain) - count(*) * avg(gain) ^ 2 as ss_total, avg(noise_var) as noise
    from all_cells group by all
),
all_ms as (
    select a.architecture, a.m, a.t, a.noise,
           r.ss_model / (a.m - 1) as ms_model, c.ss_target / (a.t - 1) as ms_target,
           (a.ss_total - r.ss_model - c.ss_target) / ((a.m - 1) * (a.t - 1)) as ms_resid
    from all_grand a
    join (select c.architecture, any_value(a.t) * sum((c.r - a.grand) ^ 2) as ss_model
          from (select architecture, model_id, avg(gain) as r from all_cells group by all) c
          join all_grand a using (architecture) group by all) r using (architecture)
    join (select c.architecture, any_value(a.m) * sum((c.c - a.grand) ^ 2) as ss_target
          from (select architecture, dataset_id, avg(gain) as c from all_cells group by all) c
          join all_grand a using (architecture) group by all) c using (architecture)
    where a.m > 1 and a.t > 1
),
all_components as (
    select architecture, m as n_models_all_cells, component, variance,
           case when count(variance) over w = 4
                then greatest(variance, 0) / nullif(sum(greatest(variance, 0)) over w, 0) end as share
    from all_ms,
    {components}
    window w as (partition by architecture)
),
mean_squares as (
    select architecture, b, m, t, noise,
           ss_model / (m - 1) as ms_model,
           ss_target / (t - 1) as ms_target,
           (ss_total - ss_model - ss_target) / ((m - 1) * (t - 1)) as ms_resid
    from _vd_anova
),
components as (
    select architecture, b, m, t, component, variance
    from mean_squares,
    {components}
),
shares as (
    -- a replicate in which a component is unknown (no seed noise in its drawn cells) has no shares
    select *, case when count(variance) over w = 4
                   then greatest(variance, 0) / nullif(sum(greatest(variance, 0)) over w, 0) end as share
    from components
    window w as (partition by architecture, b)
),
intervals as (
    select architecture, component,
           quantile_cont(variance, 0.025) as variance_low, quantile_cont(variance, 0.975) as variance_high,
           quantile_cont(share, 0.025) as share_low, quantile_cont(share, 0.975) as share_high,
           count(variance) as n_variance, count(share) as n_share, count(*) as n_replicates
    from shares where b > 0 group by all
),
checked as (
    -- an interval is kept when the block is large enough, at least 95% of the replicates give the figure and
    -- the interval holds the point estimate; otherwise NULL
    select p.architecture, p.component, p.variance, p.share, p.m, p.t, i.n_replicates,
           p.m >= {min_models} and p.t >= {min_targets} as enough,
           i.variance_low, i.variance_high, i.share_low, i.share_high,
           enough and i.n_variance >= 0.95 * i.n_replicates
               and i.variance_low <= p.variance + 1e-9 and p.variance <= i.variance_high + 1e-9 as variance_ok,
           enough and i.n_share >= 0.95 * i.n_replicates
               and i.share_low <= p.share + 1e-9 and p.share <= i.share_high + 1e-9 as share_ok
    from shares p
    join intervals i using (architecture, component)
    where p.b = 0
)
select
    c.architecture, c.component,
    c.variance,
    case when c.variance_ok then c.variance_low end as variance_low,
    case when c.variance_ok then c.variance_high end as variance_high,
    c.share,
    case when c.share_ok then c.share_low end as share_low,
    case when c.share_ok then c.share_high end as share_high,
    c.variance < 0 as negative,
    c.m as n_models, c.t as n_targets, c.n_replicates,
    o.n_models_unflagged, o.n_models_with_collapsed,
    a.variance as variance_all_cells, a.share as share_all_cells, a.n_models_all_cells
from checked c
join left_out o using (architecture)
left join all_components a using (architecture, component)
order by c.architecture, c.component
"""


def _counts(session, architecture: str, axis: str, n: int) -> np.ndarray:
    """(N_REPLICATES + 1) x n: how often replicate b draws position k (replicate 0 draws each position once)."""
    draws = session.execute(DRAWS, {"architecture": architecture, "axis": axis, "n": n,
                                    "replicates": N_REPLICATES}).fetchnumpy()
    counts = np.bincount(np.asarray(draws["b"], dtype=np.int64) * n + np.asarray(draws["k"], dtype=np.int64),
                         minlength=(N_REPLICATES + 1) * n).astype(np.float64).reshape(N_REPLICATES + 1, n)
    counts[0] = 1.0
    return counts


def _replicates(x: np.ndarray, noise_var: np.ndarray, u: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """The sums of squares and the seed noise of every replicate (rows of u and w) of the M x T block x."""
    m, t = x.shape
    known = ~np.isnan(noise_var)
    v, n = np.where(known, noise_var, 0.0), known.astype(np.float64)
    c = u @ x  # C_t per replicate: (B+1) x T
    s = (c * w).sum(axis=1)
    q = ((u @ (x * x)) * w).sum(axis=1)
    r = x @ w.T  # R_m per replicate: M x (B+1)
    sum_u_r2 = (u * (r.T * r.T)).sum(axis=1)
    sum_w_c2 = (w * c * c).sum(axis=1)
    noise_sum = ((u @ v) * w).sum(axis=1)
    noise_n = ((u @ n) * w).sum(axis=1)
    big_n = m * t
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.where(noise_n > 0, noise_sum / noise_n, np.nan)
    return {"ss_total": q - s * s / big_n, "ss_model": sum_u_r2 / t - s * s / big_n,
            "ss_target": sum_w_c2 / m - s * s / big_n, "noise": noise}


def model(dbt, session):
    dbt.config(materialized="table")
    # the inputs as names this connection alone sees (nothing is created in the warehouse but the table)
    session.register("_vd_gains", dbt.ref("gains"))
    session.register("_vd_flags", dbt.ref("model_flags"))
    session.execute(KEPT_ROWS)
    session.execute(BLOCK)
    dims = session.execute("select a, architecture, m, t, grand from _vd_dims order by a").fetchall()
    cells = session.execute("select d.a, c.mi, c.tj, c.gain - d.grand as x, c.noise_var "
                            "from _vd_cells c join _vd_dims d using (architecture)").fetchnumpy()
    a_col, mi, tj = (np.asarray(cells[k], dtype=np.int64) for k in ("a", "mi", "tj"))
    x_col = np.asarray(cells["x"], dtype=np.float64)
    v_raw = cells["noise_var"]
    v_col = np.asarray(np.ma.filled(v_raw.astype(np.float64), np.nan) if np.ma.isMaskedArray(v_raw) else v_raw,
                       dtype=np.float64)
    parts = []
    for a, architecture, m, t, _grand in dims:
        rows = a_col == a
        x = np.zeros((m, t))
        noise_var = np.full((m, t), np.nan)
        x[mi[rows], tj[rows]] = x_col[rows]
        noise_var[mi[rows], tj[rows]] = v_col[rows]
        sums = _replicates(x, noise_var, _counts(session, architecture, "model", m),
                           _counts(session, architecture, "target", t))
        b = np.arange(N_REPLICATES + 1, dtype=np.int64)
        parts.append(pa.table({
            "architecture": pa.array([architecture] * len(b), pa.string()), "b": b,
            "m": np.full(len(b), m, dtype=np.int64), "t": np.full(len(b), t, dtype=np.int64),
            **{k: pa.array(sums[k], pa.float64()) for k in ("ss_total", "ss_model", "ss_target")},
            "noise": pa.array(sums["noise"], pa.float64(), mask=np.isnan(sums["noise"])),
        }))
    schema = pa.schema([("architecture", pa.string()), ("b", pa.int64()), ("m", pa.int64()), ("t", pa.int64()),
                        ("ss_total", pa.float64()), ("ss_model", pa.float64()), ("ss_target", pa.float64()),
                        ("noise", pa.float64())])
    anova = pa.concat_tables(parts) if parts else schema.empty_table()
    session.register("_vd_anova", anova)
    result = session.execute(RESULT.format(components=VARIANCE_COMPONENTS, min_models=MIN_MODELS,
                                           min_targets=MIN_TARGETS)).fetch_arrow_table()
    for name in ("_vd_anova", "_vd_gains", "_vd_flags"):
        session.unregister(name)
    for name in ("_vd_cells", "_vd_dims", "_vd_g"):
        session.execute(f"drop table if exists {name}")
    return result
