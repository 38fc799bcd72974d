-- Per-target sensitivity: how much targets gain from a good start, over unflagged models.
select
    g.architecture, g.dataset_id,
    count(*) as n_models,
    avg(g.gain) as mean_gain,
    max(g.gain) as max_gain,
    quantile_cont(g.gain, 0.9) as p90_gain,
    avg(case when g.gain > 0 then 1.0 else 0.0 end) as share_gaining,
    any_value(g.baseline_mean) as baseline_mean,
    any_value(g.baseline_sd) as baseline_sd,
    any_value(g.n_baseline) as n_baseline
from {{ ref('gains') }} g
join {{ ref('model_flags') }} f using (architecture, model_id)
where not f.flagged
group by all
order by g.architecture, g.dataset_id
