-- Gain of starting from a model instead of the pretrained one, per (architecture, model, target):
-- mean score over the model's seeds minus the mean over the pretrained model's seeds.
-- Seed noise comes from the pretrained model's seeds (a model's own spread over 1-3 seeds is too noisy to use),
-- so gain_se = baseline_sd * sqrt(1/n_seeds + 1/n_baseline). Runs of a user's own target (origin 'user') are
-- not part of the suite and stay out.
with runs as (
    select architecture, model_id, dataset_id, score
    from {{ source('warehouse', 'finetune_runs') }}
    where status = 'ok' and score is not null and origin <> 'user'
),
pretrained as (
    select architecture, model_id from {{ source('warehouse', 'hub_models') }} where role = 'pretrained'
),
baseline as (
    select r.architecture, r.dataset_id,
           avg(r.score) as baseline_mean, stddev_samp(r.score) as baseline_sd, count(*) as n_baseline
    from runs r join pretrained p using (architecture, model_id)
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
    c.score_mean - b.baseline_mean as gain,
    b.baseline_sd * sqrt(1.0 / c.n_seeds + 1.0 / b.n_baseline) as gain_se
from cells c
join baseline b using (architecture, dataset_id)
order by c.architecture, c.model_id, c.dataset_id
