-- Per-base effect, one scale for what a user reads (docs/ranking.md):
--   mean_gain, ci_low, ci_high: THE gain, in points: the mean over the model's kept cells (cells that did not
--     collapse; gains.collapsed) of gain = score - robust pretrained baseline, with a 95% t-interval across those
--     targets. median_gain and win_rate describe the same cells; n_collapsed counts the cells left out.
--   ranking_score: what orders the list, never shown as a gain. The two-way random-effects posterior of the
--     winsorized gains (`winsorized_gains`, `ranking_reliability`): mean target gain + shrinkage * the model's raw
--     effect, shrinkage = var_base / (var_base + var_residual / n_targets of this model). Chosen over simpler rules
--     by nested held-out evaluation (benchmarks/heldout_ranking.py).
-- The pretrained model is a row of every ranking ("stay"): gain 0 on every target, mean_gain 0, ranking_score 0
-- (its gains are known exactly: nothing to winsorize or shrink), so a candidate ranks above it when its
-- ranking_score is above 0.
-- Rank: by ranking_score when the architecture's order has evidence (ranking_reliability.order_has_evidence), else
-- by the raw-scale mean_gain, with every row marked `tied`. Exact ties share a rank; names never order anything.
-- Against rank 1, over the targets both have kept cells, on the raw scale: the mean paired difference of gains, its
-- 95% t-interval and p_better_than_rank1 (the paired t statistic's CDF); `tied_with_rank1` when the interval
-- holds 0. Flagged models (model_flags) keep their raw columns and get no rank.
with kept as (
    select architecture, model_id, dataset_id, gain from {{ ref('gains') }} where not collapsed
),
pretrained as (
    select distinct g.architecture, h.model_id
    from {{ ref('gains') }} g
    join {{ source('warehouse', 'hub_models') }} h on h.architecture = g.architecture and h.role = 'pretrained'
),
raw as (
    select g.architecture, g.model_id, false as is_pretrained,
           count(*) filter (where not g.collapsed) as n_targets,
           avg(g.gain) filter (where not g.collapsed) as mean_gain,
           median(g.gain) filter (where not g.collapsed) as median_gain,
           stddev_samp(g.gain) filter (where not g.collapsed) as sd_gain,
           avg(case when g.gain > 0 then 1.0 else 0.0 end) filter (where not g.collapsed) as win_rate,
           count(*) filter (where g.collapsed) as n_collapsed
    from {{ ref('gains') }} g
    group by all
    union all
    select p.architecture, p.model_id, true, count(distinct g.dataset_id), 0.0, 0.0, 0.0, 0.0, 0
    from pretrained p join {{ ref('gains') }} g using (architecture)
    group by all
),
w as (select * from {{ ref('winsorized_gains') }}),
target_means as (
    select architecture, dataset_id, avg(gain_w) as target_mean,
           any_value(center) as center, any_value(scale) as scale
    from w group by all
),
grand as (
    select architecture, avg(target_mean) as mean_target_gain from target_means group by all
),
effects as (
    select w.architecture, w.model_id, avg(w.gain_w - t.target_mean) as model_effect, count(*) as n_used
    from w join target_means t using (architecture, dataset_id)
    group by all
    union all
    -- the pretrained model: its gain is 0 on every target, exactly (no noise to winsorize or shrink)
    select p.architecture, p.model_id, null, count(*)
    from pretrained p join target_means t using (architecture)
    group by all
),
scored as (
    select e.*, x.mean_gain, r.order_has_evidence,
           case when x.is_pretrained then 0.0
                else gr.mean_target_gain
                     + case when r.var_base > 0 then r.var_base / (r.var_base + r.var_residual / e.n_used)
                            else 0.0 end * e.model_effect end as ranking_score,
           case when x.is_pretrained then null
                when r.var_base > 0 then r.var_base / (r.var_base + r.var_residual / e.n_used) else 0.0 end
               as shrinkage
    from effects e
    join raw x using (architecture, model_id)
    join {{ ref('ranking_reliability') }} r using (architecture)
    join grand gr using (architecture)
),
ranked as (
    select *,
           -- rounded to 1e-9 so that equal scores summed in another order still tie and the mean gain decides
           rank() over (partition by architecture order by
                        round(case when order_has_evidence then ranking_score else mean_gain end, 9) desc,
                        round(mean_gain, 9) desc) as rank
    from scored
),
-- the raw-scale cells of every ranked row, the pretrained model's zeros included, for the paired comparison
board_cells as (
    select k.* from kept k semi join ranked r using (architecture, model_id)
    union all
    select p.architecture, p.model_id, t.dataset_id, 0.0
    from pretrained p join target_means t using (architecture)
),
paired as (
    select c.architecture, c.model_id,
           count(*) as n_shared_with_rank1,
           avg(c.gain - top.gain) as diff_vs_rank1,
           stddev_samp(c.gain - top.gain) / sqrt(count(*)) as diff_se
    from board_cells c
    -- one rank-1 row per architecture as the reference, even when several share rank 1 (the higher mean gain)
    join (select architecture, model_id from ranked where rank = 1
          qualify row_number() over (partition by architecture order by mean_gain desc, ranking_score desc) = 1) r1
      on r1.architecture = c.architecture
    join board_cells top on top.architecture = c.architecture and top.model_id = r1.model_id
                        and top.dataset_id = c.dataset_id
    group by all
)
select
    x.architecture, x.model_id, x.is_pretrained, x.n_targets, x.mean_gain, x.median_gain,
    case when x.is_pretrained then 0.0
         else x.mean_gain - {{ t975('x.n_targets - 1') }} * x.sd_gain / sqrt(x.n_targets) end as ci_low,
    case when x.is_pretrained then 0.0
         else x.mean_gain + {{ t975('x.n_targets - 1') }} * x.sd_gain / sqrt(x.n_targets) end as ci_high,
    x.win_rate, x.n_collapsed,
    r.model_effect, r.shrinkage,
    r.ranking_score,
    r.rank,
    r.order_has_evidence,
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
    case when r.rank is null then null
         when not r.order_has_evidence then true
         when r.rank = 1 then false
         when p.n_shared_with_rank1 < 2 then true
         else coalesce(abs(p.diff_vs_rank1) <= {{ t975('p.n_shared_with_rank1 - 1') }} * p.diff_se, false)
    end as tied,
    coalesce(f.flagged, false) as flagged
from raw x
left join ranked r using (architecture, model_id)
left join paired p using (architecture, model_id)
left join {{ ref('model_flags') }} f using (architecture, model_id)
order by x.architecture, r.rank nulls last, x.mean_gain desc nulls last
