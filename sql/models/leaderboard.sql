-- The ranking per architecture: every finetuned model with its average score, its gain over the pretrained model
-- (plain mean with a 95% interval across targets, and the random-effects posterior that sets the order, with its
-- interval), how it compares with rank 1, win rate, probe score and integrity flag. rank is NULL for flagged models.
with pretrained as (
    select architecture, avg(baseline_mean) as pretrained_avg
    from (select distinct architecture, dataset_id, baseline_mean from {{ ref('gains') }})
    group by all
),
scores as (
    select architecture, model_id, avg(score_mean) as avg_score from {{ ref('gains') }} group by all
),
probe as (
    -- The linear probe score, preferring the published MNLI probe where an architecture has several proxies.
    select architecture, model_id, score as probe_score, proxy_dataset as probe_dataset
    from {{ source('warehouse', 'probe_scores') }}
    where method = 'linear_probe'
    qualify row_number() over (
        partition by architecture, model_id order by (proxy_dataset = 'mnli') desc, proxy_dataset
    ) = 1
)
select
    e.architecture, e.rank, e.model_id,
    s.avg_score, p.pretrained_avg,
    e.posterior_gain, e.posterior_low, e.posterior_high, r.reliability,
    e.p_better_than_rank1, e.tied_with_rank1,
    e.mean_gain, e.ci_low, e.ci_high, e.win_rate, e.n_targets, e.n_collapsed,
    pr.probe_score, pr.probe_dataset,
    e.flagged, f.flag_reason
from {{ ref('base_model_effects') }} e
join scores s using (architecture, model_id)
join pretrained p using (architecture)
join {{ ref('model_flags') }} f using (architecture, model_id)
left join {{ ref('ranking_reliability') }} r using (architecture)
left join probe pr using (architecture, model_id)
order by e.architecture, e.rank nulls last, e.model_id
