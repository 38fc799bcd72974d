-- The ranking per architecture, one scale for every number called a gain (docs/ranking.md): every finetuned model
-- and the pretrained model itself ("stay", gain 0) with its average score, its gain over the pretrained model in
-- points (mean over its kept cells, with a 95% t-interval across targets), how it compares with rank 1, win rate,
-- probe score and integrity flag. ranking_score orders the list and is not a gain. `tied` marks every row that
-- cannot be told apart from rank 1, rank 1 included when some other row is tied with it, and every row of an
-- architecture whose order carries no evidence (order_has_evidence false). best_is_pretrained: no candidate ranks
-- above the pretrained model. rank is NULL for flagged models. n_suite_targets: the architecture's targets (any model's
-- cell); few_cells marks a ranked candidate whose rank rests on fewer kept cells than model_flags needs to judge a
-- row (var integrity_min_targets): its values were never checked for integrity, and its interval is wide.
with pretrained as (
    -- the plain mean of the pretrained seeds, as published (row 0); gains are over the robust baseline
    select architecture, avg(baseline_mean) as pretrained_avg
    from (select distinct architecture, dataset_id, baseline_mean from {{ ref('gains') }})
    group by all
),
scores as (
    select architecture, model_id, avg(score_mean) filter (where not collapsed) as avg_score
    from {{ ref('gains') }} group by all
),
probe as (
    -- The linear probe score, preferring the published MNLI probe where an architecture has several proxies.
    select architecture, model_id, score as probe_score, proxy_dataset as probe_dataset
    from {{ source('warehouse', 'probe_scores') }}
    where method = 'linear_probe'
    qualify row_number() over (
        partition by architecture, model_id order by (proxy_dataset = 'mnli') desc, proxy_dataset
    ) = 1
),
suite as (
    select architecture, count(distinct dataset_id) as n_suite_targets from {{ ref('gains') }} group by all
),
board as (
    select e.*,
           bool_or(e.is_pretrained and e.rank = 1) over (partition by e.architecture) as best_is_pretrained,
           bool_or(e.rank > 1 and e.tied) over (partition by e.architecture) as any_tied_below
    from {{ ref('base_model_effects') }} e
)
select
    e.architecture, e.rank, e.model_id, e.is_pretrained,
    case when e.is_pretrained then p.pretrained_avg else s.avg_score end as avg_score, p.pretrained_avg,
    e.mean_gain, e.ci_low, e.ci_high,
    e.ranking_score, r.reliability, e.order_has_evidence,
    e.p_better_than_rank1, e.tied_with_rank1,
    case when e.rank = 1 then not e.order_has_evidence or e.any_tied_below else e.tied end as tied,
    e.best_is_pretrained,
    e.median_gain, e.win_rate, e.n_targets, su.n_suite_targets, e.n_collapsed,
    coalesce(not e.is_pretrained and e.rank is not null
             and e.n_targets < {{ var('integrity_min_targets') }}, false) as few_cells,
    pr.probe_score, pr.probe_dataset,
    e.flagged, f.flag_reason
from board e
join pretrained p using (architecture)
left join suite su using (architecture)
left join scores s using (architecture, model_id)
left join {{ ref('model_flags') }} f using (architecture, model_id)
left join {{ ref('ranking_reliability') }} r using (architecture)
left join probe pr using (architecture, model_id)
order by e.architecture, e.rank nulls last, e.mean_gain desc nulls last
