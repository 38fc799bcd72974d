-- Two-way random-effects model of the winsorized gains, per architecture: gain_w(m, t) = mu + target_t + base_m + e.
-- Target effects are fixed (target means over the ranked models); a model's raw effect is its mean of
-- gain_w - target mean over its own targets, so models measured on different target subsets compare fairly.
--   var_residual = residual mean square after the model and target effects, sum e^2 / (N - M - T + 1);
--   var_base     = variance of the raw model effects minus the part their noise explains (avg var_residual / n_m);
--                  for complete data this is (MS_model - MS_resid) / T. At or below 0: no detectable differences.
--   reliability  = var_base / (var_base + var_residual / n): the share of a model's observed mean (over the
--                  typical n targets) that is signal; 0 when var_base <= 0, never 1.
--   f_statistic  = var_effects / (var_residual * avg(1 / n_m)): the models' F test (MS_model / MS_resid for
--                  complete data), df (M - 1, N - M - T + 1); f_p_value from Paulson's normal approximation of
--                  the F distribution.
--   order_has_evidence = var_base > 0 and f_p_value < 0.05: the models can be told apart at all. When false the
--                  leaderboard orders by the raw-scale mean gain, marks every row tied and says so.
with w as (select * from {{ ref('winsorized_gains') }}),
target_means as (
    select architecture, dataset_id, avg(gain_w) as target_mean from w group by all
),
centered as (
    select w.*, w.gain_w - t.target_mean as y from w join target_means t using (architecture, dataset_id)
),
model_means as (
    select architecture, model_id, avg(y) as model_effect, count(*) as n_targets from centered group by all
),
residual as (
    select c.architecture,
           sum((c.y - m.model_effect) ^ 2) as sse,
           count(*) as n_cells,
           count(distinct c.model_id) as n_models,
           count(distinct c.dataset_id) as n_targets
    from centered c join model_means m using (architecture, model_id)
    group by all
),
moments as (
    select r.architecture, any_value(r.n_models) as n_models, any_value(r.n_targets) as n_targets,
           any_value(r.n_cells) as n_cells,
           any_value(r.sse) / nullif(any_value(r.n_cells - r.n_models - r.n_targets + 1), 0) as var_residual,
           var_samp(m.model_effect) as var_effects,
           avg(1.0 / m.n_targets) as mean_inv_n,
           avg(m.n_targets) as mean_n
    from residual r join model_means m using (architecture)
    group by all
),
tested as (
    select *,
           var_effects / nullif(var_residual * mean_inv_n, 0) as f,
           n_models - 1 as df1,
           n_cells - n_models - n_targets + 1 as df2
    from moments
),
p_values as (
    select *,
           case when f is null or df1 < 1 or df2 < 1 then null
                when f <= 0 then 1.0
                else 1 - {{ normal_cdf('((1 - 2 / (9 * df2)) * f ^ (1 / 3) - (1 - 2 / (9 * df1)))
                                       / sqrt(2 / (9 * df1) + f ^ (2 / 3) * 2 / (9 * df2))') }} end as f_p_value
    from tested
)
select
    architecture, n_models, n_targets, n_cells,
    var_effects - var_residual * mean_inv_n as var_base,
    var_residual,
    case when var_effects - var_residual * mean_inv_n > 0
         then (var_effects - var_residual * mean_inv_n)
              / (var_effects - var_residual * mean_inv_n + var_residual / mean_n)
         else 0.0 end as reliability,
    f as f_statistic,
    f_p_value,
    coalesce(var_effects - var_residual * mean_inv_n > 0 and f_p_value < 0.05, false) as order_has_evidence,
    {{ var('ranking_clip') }}::double as clip
from p_values
order by architecture
