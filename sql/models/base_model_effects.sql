-- Per-base effect: how good a start each model is across the targets of its architecture, ranked by the
-- posterior mean of the two-way random-effects model in `ranking_reliability` (docs/ranking.md).
--   posterior_gain = mean target gain + shrinkage * the model's raw effect, shrinkage = var_base /
--   (var_base + var_residual / n_targets of this model); its 95% interval uses the posterior variance
--   shrinkage * var_residual / n_targets plus the variance of the mean target gain.
-- Against rank 1, over the targets both share: the mean difference of winsorized gains, its 95% t-interval and
-- p_better_than_rank1 (the paired t statistic's CDF); `tied_with_rank1` when the interval holds 0.
-- mean_gain, ci_low, ci_high (t-interval across targets), median_gain and win_rate describe the raw gains.
-- Flagged models (model_flags) keep their raw columns and get no rank.
with raw as (
    select g.architecture, g.model_id,
           count(*) as n_targets,
           avg(g.gain) as mean_gain,
           median(g.gain) as median_gain,
           stddev_samp(g.gain) as sd_gain,
           avg(case when g.gain > 0 then 1.0 else 0.0 end) as win_rate,
           count(*) filter (where g.collapsed) as n_collapsed
    from {{ ref('gains') }} g
    group by all
),
w as (select * from {{ ref('winsorized_gains') }}),
target_means as (select architecture, dataset_id, avg(gain_w) as target_mean from w group by all),
grand as (
    select architecture, avg(target_mean) as mean_target_gain, var_samp(target_mean) / count(*) as var_grand
    from target_means group by all
),
effects as (
    select w.architecture, w.model_id, avg(w.gain_w - t.target_mean) as model_effect, count(*) as n_used
    from w join target_means t using (architecture, dataset_id)
    group by all
),
posterior as (
    select e.*, r.reliability as architecture_reliability,
           case when r.var_base > 0 then r.var_base / (r.var_base + r.var_residual / e.n_used) else 0.0 end
               as shrinkage,
           r.var_residual, gr.mean_target_gain, gr.var_grand
    from effects e
    join {{ ref('ranking_reliability') }} r using (architecture)
    join grand gr using (architecture)
),
ranked as (
    select *,
           mean_target_gain + shrinkage * model_effect as posterior_gain,
           sqrt(shrinkage * var_residual / n_used + coalesce(var_grand, 0)) as posterior_sd,
           row_number() over (partition by architecture
                              order by mean_target_gain + shrinkage * model_effect desc, model_id) as rank
    from posterior
),
paired as (
    select w.architecture, w.model_id,
           count(*) as n_shared_with_rank1,
           avg(w.gain_w - top.gain_w) as diff_vs_rank1,
           stddev_samp(w.gain_w - top.gain_w) / sqrt(count(*)) as diff_se
    from w
    join ranked r1 on r1.architecture = w.architecture and r1.rank = 1
    join w top on top.architecture = w.architecture and top.model_id = r1.model_id and top.dataset_id = w.dataset_id
    group by all
)
select
    x.architecture, x.model_id, x.n_targets, x.mean_gain, x.median_gain,
    {{ t_bounds('x.mean_gain', 'x.sd_gain / sqrt(x.n_targets)', 'x.n_targets - 1', 'ci_low', 'ci_high') }},
    x.win_rate, x.n_collapsed,
    r.model_effect, r.shrinkage,
    r.posterior_gain,
    r.posterior_gain - 1.959964 * r.posterior_sd as posterior_low,
    r.posterior_gain + 1.959964 * r.posterior_sd as posterior_high,
    r.rank,
    p.n_shared_with_rank1,
    case when r.rank > 1 then p.diff_vs_rank1 end as diff_vs_rank1,
    case when r.rank > 1 then p.diff_vs_rank1 - {{ t975('p.n_shared_with_rank1 - 1') }} * p.diff_se end
        as diff_vs_rank1_low,
    case when r.rank > 1 then p.diff_vs_rank1 + {{ t975('p.n_shared_with_rank1 - 1') }} * p.diff_se end
        as diff_vs_rank1_high,
    case when r.rank > 1 and p.diff_se > 0 and p.n_shared_with_rank1 > 1
             then {{ t_cdf('p.diff_vs_rank1 / p.diff_se', 'p.n_shared_with_rank1 - 1') }}
         when r.rank > 1 and p.n_shared_with_rank1 > 1 then (p.diff_vs_rank1 > 0)::int::double end
        as p_better_than_rank1,
    case when r.rank is null then null
         when r.rank = 1 then true
         when p.n_shared_with_rank1 < 2 then true  -- one shared target: nothing tells them apart
         else coalesce(abs(p.diff_vs_rank1) <= {{ t975('p.n_shared_with_rank1 - 1') }} * p.diff_se, false)
    end as tied_with_rank1,
    r.rank is null as flagged
from raw x
left join ranked r using (architecture, model_id)
left join paired p using (architecture, model_id)
order by x.architecture, r.rank nulls last, x.model_id
