-- Gain of starting from a model instead of the pretrained one, per (architecture, model, target).
--
-- The baseline is robust: a pretrained seed that collapsed is left out by the same rule that marks a collapsed
-- finetuned cell. Per (architecture, target), with m and s the median and 1.4826 * MAD of the pretrained seeds,
-- a score collapsed when it lies below m - max(10 points, 4 s), or within half a point of the majority-class share
-- where the dataset's majority share is known. `baseline_robust` (the mean of the seeds that did not collapse) is
-- what the gain is taken over; `baseline_mean` keeps the plain mean of all seeds for comparison.
-- Collapsed finetuned cells are marked (`collapsed`), never dropped: the ranking's estimator deals with them.
-- gain_se = baseline_robust_sd * sqrt(1/n_seeds + 1/n_baseline_used): seed noise from the pretrained seeds (a
-- model's own 1-3 seeds are too few to estimate it). Runs of a user's own target (origin 'user') stay out.
with runs as (
    select architecture, model_id, dataset_id, score
    from {{ source('warehouse', 'finetune_runs') }}
    where status = 'ok' and score is not null and origin <> 'user'
),
pretrained as (
    select architecture, model_id from {{ source('warehouse', 'hub_models') }} where role = 'pretrained'
),
majority as (
    select dataset_id, any_value(majority_share) as majority_share
    from {{ source('warehouse', 'datasets') }}
    where metric = 'accuracy' and majority_share is not null
    group by all
),
seeds as (
    select r.architecture, r.dataset_id, r.score
    from runs r join pretrained p using (architecture, model_id)
),
seed_center as (
    select architecture, dataset_id, median(score) as seed_median, count(*) as n_baseline,
           avg(score) as baseline_mean, stddev_samp(score) as baseline_sd
    from seeds group by all
),
seed_spread as (
    select s.architecture, s.dataset_id, 1.4826 * median(abs(s.score - c.seed_median)) as seed_mad_sd
    from seeds s join seed_center c using (architecture, dataset_id)
    group by all
),
rule as (
    select c.*, greatest(
               c.seed_median - greatest(10, 4 * coalesce(p.seed_mad_sd, 0)),
               coalesce(100 * m.majority_share + 0.5, -1e9)
           ) as collapse_below
    from seed_center c
    join seed_spread p using (architecture, dataset_id)
    left join majority m using (dataset_id)
),
baseline as (
    select r.architecture, r.dataset_id,
           any_value(r.baseline_mean) as baseline_mean, any_value(r.baseline_sd) as baseline_sd,
           any_value(r.n_baseline) as n_baseline, any_value(r.collapse_below) as collapse_below,
           avg(s.score) filter (where s.score >= r.collapse_below) as baseline_robust,
           stddev_samp(s.score) filter (where s.score >= r.collapse_below) as baseline_robust_sd,
           count(*) filter (where s.score >= r.collapse_below) as n_baseline_used
    from rule r join seeds s using (architecture, dataset_id)
    group by all
),
cells as (
    select r.architecture, r.model_id, r.dataset_id, count(*) as n_seeds, avg(r.score) as score_mean
    from runs r anti join pretrained p using (architecture, model_id)
    group by all
)
select
    c.architecture, c.model_id, c.dataset_id, c.n_seeds, c.score_mean,
    b.baseline_mean, b.baseline_sd, b.n_baseline,
    b.baseline_robust, b.baseline_robust_sd, b.n_baseline_used, b.n_baseline - b.n_baseline_used as n_baseline_collapsed,
    b.collapse_below,
    c.score_mean < b.collapse_below as collapsed,
    c.score_mean - b.baseline_robust as gain,
    b.baseline_robust_sd * sqrt(1.0 / c.n_seeds + 1.0 / b.n_baseline_used) as gain_se
from cells c
join baseline b using (architecture, dataset_id)
where b.n_baseline_used > 0
order by c.architecture, c.model_id, c.dataset_id
