-- How much of the gain is the base model, the target, their interaction, and seed noise (per architecture).
-- Two-way decomposition without replication on the complete block: unflagged models that have a gain on every
-- target of the architecture (cells are never imputed; n_models and n_targets say what was used).
-- Seed noise: a cell's score varies by baseline_sd^2 / n_seeds between reruns (the baseline mean is shared by
-- the whole target column and cancels). In the residual of the additive fit its expected sum of squares is
-- sum_t noise_var_t * (M - 1)(T - 1) / T; that share is reported as `noise`, the rest of the residual as
-- `interaction` (floored at 0).
with g as (
    select g.* from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged
),
n_targets as (select architecture, count(distinct dataset_id) as t from g group by all),
complete as (
    select g.architecture, g.model_id from g join n_targets n using (architecture)
    group by all having count(*) = any_value(n.t)
),
cells as (select g.* from g semi join complete c using (architecture, model_id)),
dims as (
    select architecture, count(distinct model_id) as m, count(distinct dataset_id) as t, avg(gain) as grand
    from cells group by all
),
row_means as (select architecture, model_id, avg(gain) as row_mean from cells group by all),
col_means as (
    select architecture, dataset_id, avg(gain) as col_mean,
           avg(coalesce(baseline_sd, 0) ^ 2 / n_seeds) as noise_var
    from cells group by all
),
sums as (
    select
        d.architecture, any_value(d.m) as m, any_value(d.t) as t,
        sum((c.gain - d.grand) ^ 2) as ss_total,
        sum((r.row_mean - d.grand) ^ 2) as ss_base,
        sum((k.col_mean - d.grand) ^ 2) as ss_target,
        sum((c.gain - r.row_mean - k.col_mean + d.grand) ^ 2) as ss_resid
    from cells c
    join dims d using (architecture)
    join row_means r using (architecture, model_id)
    join col_means k using (architecture, dataset_id)
    group by all
),
noise as (
    select s.architecture,
           least(s.ss_resid, sum(k.noise_var) * (s.m - 1) * (s.t - 1) / s.t) as ss_noise
    from sums s join col_means k using (architecture)
    group by s.architecture, s.ss_resid, s.m, s.t
),
components as (
    select architecture, 'base' as component, ss_base as sum_sq from sums
    union all select architecture, 'target', ss_target from sums
    union all select s.architecture, 'interaction', s.ss_resid - n.ss_noise from sums s join noise n using (architecture)
    union all select architecture, 'noise', ss_noise from noise
)
select
    c.architecture, c.component, c.sum_sq,
    case when s.ss_total > 0 then c.sum_sq / s.ss_total end as fraction,
    s.m as n_models, s.t as n_targets
from components c join sums s using (architecture)
order by c.architecture, c.component
