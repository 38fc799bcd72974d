-- Rows whose values cannot be what they claim (docs/data_quality.md). Integrity only: how well or badly a model
-- performs never flags it. A genuinely bad model stays in and ranks low; collapsed cells are counted here for
-- information and marked per cell in `gains`.
--
-- shifted: the row does not follow its architecture's target profile. Target difficulty dominates the spread of
-- scores across targets (tens of points), and a starting point moves a score by a few points, so a genuine row
-- correlates closely with the per-target median over all finetuned models of the architecture (the consensus
-- profile). Rows whose values sit under the wrong target columns do not: Pearson r < 0.8, judged with 8 or more
-- targets. The consensus is the models' median rather than the pretrained model's own scores, so an architecture
-- whose pretrained model is weak (and whose good starts gain on most targets) is judged the same way.
with g as (select * from {{ ref('gains') }}),
consensus as (
    select architecture, dataset_id, median(score_mean) as profile_score
    from g group by all
),
per_model as (
    select
        g.architecture, g.model_id,
        count(*) as n_targets,
        corr(g.score_mean, c.profile_score) as profile_corr,
        count(*) filter (where g.collapsed) as n_collapsed
    from g join consensus c using (architecture, dataset_id)
    group by all
)
select
    architecture, model_id, n_targets, profile_corr, n_collapsed,
    coalesce(n_targets >= 8 and profile_corr < 0.8, false) as shifted,
    coalesce(n_targets >= 8 and profile_corr < 0.8, false) as flagged,
    case when n_targets >= 8 and profile_corr < 0.8 then
        'off the target profile: its scores correlate r=' || round(profile_corr, 2)
        || ' with the per-target median of the architecture''s models (genuine rows: r >= 0.8); '
        || 'values likely under the wrong target columns'
    end as flag_reason
from per_model
order by architecture, model_id
