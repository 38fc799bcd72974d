-- How well each cheap probe predicts a model's mean finetuning gain (unflagged models with both numbers),
-- and what picking by the probe loses: the best mean gain among these models minus the best among the
-- probe's top 1 / top 3.
with effects as (
    select architecture, model_id, mean_gain
    from {{ ref('base_model_effects') }}
    where not flagged and not is_pretrained
),
probes as (
    select p.architecture, p.model_id, p.method, p.proxy_dataset, p.score, e.mean_gain
    from {{ source('warehouse', 'probe_scores') }} p
    join effects e using (architecture, model_id)
    where p.score is not null
),
ranked as (
    select *,
           rank() over (partition by architecture, method, proxy_dataset order by score) as probe_rank,
           rank() over (partition by architecture, method, proxy_dataset order by mean_gain) as gain_rank,
           row_number() over (partition by architecture, method, proxy_dataset order by score desc, model_id)
               as probe_position
    from probes
)
select
    architecture, method, proxy_dataset,
    count(*) as n_models,
    corr(probe_rank, gain_rank) as spearman,
    corr(score, mean_gain) as pearson,
    max(mean_gain) - max(mean_gain) filter (where probe_position = 1) as top1_lost_gain,
    max(mean_gain) - max(mean_gain) filter (where probe_position <= 3) as top3_lost_gain
from ranked
group by all
having count(*) >= 3
order by architecture, method, proxy_dataset
