-- Per-base effect: how good a start each model is across the targets of its architecture.
-- robust_score (the default ranking, docs/ranking.md): the 20%-trimmed mean gain (drop the highest and lowest 20% of
-- a model's targets: collapsed runs and lucky seeds), shrunk toward 0 (= the pretrained model) by the reliability
-- of a mean over n_targets noisy target gains: between / (between + within / n_targets), with `between` the
-- variance of true model means and `within` a model's gain variance across targets, estimated per architecture
-- from unflagged models. Flagged models (model_flags) get no rank.
with g as (
    select g.*, f.flagged
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
),
ordered as (
    select *,
           row_number() over (partition by architecture, model_id order by gain, dataset_id) as pos,
           count(*) over (partition by architecture, model_id) as n
    from g
),
per_model as (
    select
        architecture, model_id,
        bool_or(flagged) as flagged,
        count(*) as n_targets,
        avg(gain) as mean_gain,
        median(gain) as median_gain,
        stddev_samp(gain) as sd_gain,
        avg(case when gain > 0 then 1.0 else 0.0 end) as win_rate,
        avg(gain) filter (where pos > floor(0.2 * n) and pos <= n - floor(0.2 * n)) as trimmed_mean_gain
    from ordered
    group by all
),
reliability as (
    select architecture,
           avg(sd_gain ^ 2) as within_var,
           var_samp(mean_gain) - avg(sd_gain ^ 2 / n_targets) as between_var
    from per_model
    where not flagged
    group by all
),
scored as (
    select
        p.*,
        p.mean_gain - {{ t975('p.n_targets - 1') }} * p.sd_gain / sqrt(p.n_targets) as ci_low,
        p.mean_gain + {{ t975('p.n_targets - 1') }} * p.sd_gain / sqrt(p.n_targets) as ci_high,
        case
            when r.between_var is null or r.between_var <= 0 or r.within_var is null then 1.0
            else r.between_var / (r.between_var + r.within_var / p.n_targets)
        end as shrinkage
    from per_model p
    left join reliability r using (architecture)
)
select
    architecture, model_id, n_targets, mean_gain, median_gain, ci_low, ci_high, win_rate,
    trimmed_mean_gain, shrinkage,
    trimmed_mean_gain * shrinkage as robust_score,
    case when not flagged then
        row_number() over (
            partition by architecture, flagged order by trimmed_mean_gain * shrinkage desc, mean_gain desc, model_id
        )
    end as rank,
    flagged
from scored
order by architecture, rank nulls last, model_id
