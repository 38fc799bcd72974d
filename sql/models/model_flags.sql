-- Rows whose values cannot be what they claim (docs/data_quality.md). Integrity only: how well or badly a model
-- performs never flags it. A genuinely bad model stays in and ranks low; collapsed cells are counted here for
-- information and marked per cell in `gains`.
--
-- shifted: the row's values sit under the wrong target columns. Target difficulty dominates the spread of scores
-- across targets (the consensus profile, the per-target median over the architecture's finetuned models, has an
-- SD of tens of points) and a starting point moves a score by a few, so a genuine row follows the profile closely.
-- A row is flagged when, judged on 8 or more targets (var integrity_min_targets), both hold:
--   1. off profile: Pearson r between its scores and the consensus profile below 0.8;
--   2. misplaced upward: some score lies more than one profile SD above the consensus on its target.
-- Moving values between columns pushes some up as far as it pushes others down; a collapsed finetune only pushes
-- scores down. So (2) keeps a genuine model whose runs collapsed on several targets (off profile by (1) alone)
-- out of the flags. The consensus is the models' median, not the pretrained model's scores, so an architecture
-- whose pretrained model is weak (and whose good starts gain on most targets) is judged the same way.
with g as (select * from {{ ref('gains') }}),
consensus as (
    select architecture, dataset_id, median(score_mean) as profile_score
    from g group by all
),
profile_spread as (
    select architecture, stddev_samp(profile_score) as profile_sd from consensus group by all
),
per_model as (
    select
        g.architecture, g.model_id,
        count(*) as n_targets,
        corr(g.score_mean, c.profile_score) as profile_corr,
        max(g.score_mean - c.profile_score) as max_above_profile,
        arg_max(g.dataset_id, g.score_mean - c.profile_score) as max_above_target,
        count(*) filter (where g.collapsed) as n_collapsed
    from g join consensus c using (architecture, dataset_id)
    group by all
),
judged as (
    select p.*, s.profile_sd,
           coalesce(p.n_targets >= {{ var('integrity_min_targets') }} and p.profile_corr < 0.8 and p.max_above_profile > s.profile_sd, false)
               as shifted
    from per_model p join profile_spread s using (architecture)
)
select
    architecture, model_id, n_targets, profile_corr, max_above_profile, max_above_target, profile_sd, n_collapsed,
    shifted,
    shifted as flagged,
    case when shifted then
        'values likely under the wrong target columns: its scores correlate r=' || round(profile_corr, 2)
        || ' with the per-target median of the architecture''s models (genuine rows: r >= 0.8), and its '
        || max_above_target || ' score is ' || round(max_above_profile, 1) || ' points above that median '
        || '(more than the profile''s SD of ' || round(profile_sd, 1) || ')'
    end as flag_reason
from judged
order by architecture, model_id
