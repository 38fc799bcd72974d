-- Variance components of the gain, per architecture: base model, target, their interaction and seed noise, each
-- with a 95% bootstrap interval (method and figures: docs/variance.md).
--
-- Scale: the raw gain in points (`gains.gain`, the kept cell's mean score less the robust pretrained baseline), never
-- the winsorized `gain_w`; every variance is in points squared.
-- Data: the kept rows and kept cells. Rows: the unflagged models (`model_flags`). Cells: the gains that did not
-- collapse (`gains.collapsed` is not true); a collapsed cell is missing, never imputed. The design is a complete
-- block: the architecture's targets are those with a kept cell, and the models are the unflagged ones with a kept
-- cell on every one of them, so a model with a collapsed (or missing) cell is left out whole. n_models / n_targets
-- say what was used, n_models_unflagged and n_models_with_collapsed what was left out. For comparison,
-- variance_all_cells / share_all_cells are the point estimates on the block that keeps collapsed cells (the
-- unflagged models with a gain on every target, collapsed or not); they show how much the collapsed cells move the
-- figures and have no interval.
-- Point estimates: two-way ANOVA without replication, models and targets random, on the M x T gains:
--   MS_model = SS_model / (M - 1), MS_target = SS_target / (T - 1), MS_resid = SS_resid / ((M - 1)(T - 1));
--   base = (MS_model - MS_resid) / T, target = (MS_target - MS_resid) / M;
--   noise = the variance a cell's gain has between reruns, baseline_robust_sd^2 / n_seeds, averaged over the cells:
--           baseline_robust_sd is the SD of the healthy pretrained seeds only (collapsed seeds left out by gains.sql;
--           a target with fewer than 2 healthy seeds has none and is left out of the average); the baseline mean is
--           shared by a target column and cancels in the residual, and with independent cell errors
--           E[MS_resid] = interaction + mean cell noise variance exactly;
--   interaction = MS_resid - noise.
-- Estimates are reported as they come: one may be negative (`negative` is then true); only the shares floor
-- the components at 0: share = max(component, 0) / sum of max(component, 0).
-- Intervals: percentile bootstrap over models AND targets, resampled independently with replacement (M models
-- and T targets per replicate), components recomputed on the resampled block. The draws are hash-based
-- (hash(replicate, architecture, 'model' | 'target', position) mod M | T), so the table is reproducible from the
-- warehouse. Replicate 0 is the data itself (every model and target once) and gives the point estimates.
-- An interval that cannot be estimated is NULL, never a made-up [0, 0]: when the block has fewer than
-- {{ min_models }} models or {{ min_targets }} targets, when fewer than 95% of the replicates give the figure (no seed
-- noise known in the drawn cells), or when the percentile interval does not hold the point estimate (e.g. a
-- positive share whose replicates are all floored at 0). A replicate in which a component is unknown has no shares.
-- A replicate is computed from weights: u = how often a model is drawn, w = how often a target is drawn; with
-- N = M T, S = sum u w x, R_m = sum_t w x (row sum), C_t = sum_m u x (column sum):
--   SS_total = sum u w x^2 - S^2/N, SS_model = sum_m u R_m^2 / T - S^2/N, SS_target = sum_t w C_t^2 / M - S^2/N.
-- x is the gain less the architecture's grand mean (shift invariant; keeps the sums well conditioned).
{% set n_replicates = 400 %}
{% set min_models = 10 %}
{% set min_targets = 5 %}
with g as (
    -- the kept rows: unflagged models; kept = the cell did not collapse
    select g.architecture, g.model_id, g.dataset_id, g.gain, g.collapsed is not true as kept,
           g.baseline_robust_sd ^ 2 / g.n_seeds as noise_var
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged
),
n_targets as (select architecture, count(distinct dataset_id) as t from g where kept group by all),
complete as (
    -- the models with a kept cell on every target that has one
    select g.architecture, g.model_id from g join n_targets n using (architecture)
    where g.kept
    group by all having count(distinct g.dataset_id) = any_value(n.t)
),
cells0 as (
    select g.architecture, g.model_id, g.dataset_id, g.gain, g.noise_var
    from g semi join complete c using (architecture, model_id)
    where g.kept
),
left_out as (
    select architecture, count(distinct model_id) as n_models_unflagged,
           count(distinct model_id) filter (where not kept) as n_models_with_collapsed
    from g group by all
),
-- the comparison block: collapsed cells kept (the unflagged models with a gain on every target); point estimates only
all_t as (select architecture, count(distinct dataset_id) as t from g group by all),
all_cells as (
    select g.* from g
    semi join (
        select g.architecture, g.model_id from g join all_t n using (architecture)
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
    {{ variance_components() }}
    window w as (partition by architecture)
),
dims as (
    select *, dense_rank() over (order by architecture) as a
    from (
        select architecture, count(distinct model_id) as m, count(distinct dataset_id) as t, avg(gain) as grand
        from cells0 group by all
    )
),
cells as materialized (
    -- integer keys: a = architecture, mi / tj = the model's / target's position (0-based) in the block
    select d.a, dense_rank() over (partition by c.architecture order by c.model_id) - 1 as mi,
           dense_rank() over (partition by c.architecture order by c.dataset_id) - 1 as tj,
           c.gain - d.grand as x, c.noise_var
    from cells0 c join dims d using (architecture)
),
replicates as (select range as b from range(0, {{ n_replicates }} + 1)),
model_w as materialized (
    -- u = how often replicate b draws model mi (position i draws hash(...) mod M); replicate 0 draws each once
    select d.a, r.b, i.range as i,
           case when r.b = 0 then i.range
                else (hash(r.b, d.architecture, 'model', i.range) % d.m::ubigint)::bigint end as mi
    from dims d cross join replicates r join range(0, (select max(m) from dims)) i on i.range < d.m
),
target_w as materialized (
    select d.a, r.b, j.range as j,
           case when r.b = 0 then j.range
                else (hash(r.b, d.architecture, 'target', j.range) % d.t::ubigint)::bigint end as tj
    from dims d cross join replicates r join range(0, (select max(t) from dims)) j on j.range < d.t
),
-- the weights as dense vectors over the block's models / targets (0 where not drawn)
u_vec as (
    select g.a, g.b, list(coalesce(n.u, 0)::double order by g.i) as uv
    from (select a, b, i from model_w) g
    left join (select a, b, mi, count(*) as u from model_w group by all) n on n.a = g.a and n.b = g.b and n.mi = g.i
    group by all
),
w_vec as (
    select g.a, g.b, list(coalesce(n.w, 0)::double order by g.j) as wv
    from (select a, b, j from target_w) g
    left join (select a, b, tj, count(*) as w from target_w group by all) n on n.a = g.a and n.b = g.b and n.tj = g.j
    group by all
),
-- the block as model rows and target columns
model_rows as (
    select a, mi, list(x order by tj) as xr, list(x * x order by tj) as x2r,
           list(coalesce(noise_var, 0) order by tj) as vr, list((noise_var is not null)::double order by tj) as nr
    from cells group by all
),
target_cols as (select a, tj, list(x order by mi) as xc from cells group by all),
-- per drawn model (weight u): R_m = sum_t w x, and the same w-weighted sums of x^2, of the noise variances and of
-- the cells whose noise variance is known
by_model as (
    -- no drawn cell with a known seed noise: NULL, not 0/0 = NaN, which would poison the quantiles
    select a, b, sum(u * r) as s, sum(u * q) as q, sum(u * r * r) as sum_u_r2, sum(u * v) / nullif(sum(u * n), 0) as noise
    from (
        select r.a, u.b, u.uv[r.mi + 1] as u,
               list_dot_product(r.xr, w.wv) as r, list_dot_product(r.x2r, w.wv) as q,
               list_dot_product(r.vr, w.wv) as v, list_dot_product(r.nr, w.wv) as n
        from model_rows r join u_vec u using (a) join w_vec w using (a, b)
        where u.uv[r.mi + 1] > 0
    )
    group by all
),
-- per drawn target: C_t = sum_m u x
by_target as (
    select c.a, w.b, sum(w.wv[c.tj + 1] * list_dot_product(c.xc, u.uv) ^ 2) as sum_w_c2
    from target_cols c join w_vec w using (a) join u_vec u using (a, b)
    where w.wv[c.tj + 1] > 0
    group by all
),
anova as (
    select d.architecture, m.b, d.m, d.t,
           m.q - m.s * m.s / (d.m * d.t) as ss_total,
           m.sum_u_r2 / d.t - m.s * m.s / (d.m * d.t) as ss_model,
           k.sum_w_c2 / d.m - m.s * m.s / (d.m * d.t) as ss_target,
           m.noise
    from by_model m join by_target k using (a, b) join dims d using (a)
),
mean_squares as (
    select architecture, b, m, t, noise,
           ss_model / (m - 1) as ms_model,
           ss_target / (t - 1) as ms_target,
           (ss_total - ss_model - ss_target) / ((m - 1) * (t - 1)) as ms_resid
    from anova
),
components as (
    select architecture, b, m, t, component, variance
    from mean_squares,
    {{ variance_components() }}
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
           p.m >= {{ min_models }} and p.t >= {{ min_targets }} as enough,
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
