-- Rows of published results that cannot be trusted, and why (docs/data_quality.md).
-- shifted:   the model's scores do not follow the targets' difficulty profile: Pearson r with the pretrained
--            model's per-target means below 0.8, or a median absolute gain above 5 points (judged with 8 or more
--            targets). Target difficulty dominates the spread of scores across targets and a start moves a score
--            by a point or two, so genuine rows follow the profile closely (r > 0.9, median |gain| under 2.3 points
--            for 90% of them); rows far off hold values that sit under the wrong target columns.
-- collapsed: the finetune collapsed on a target (gain below -max(10 points, 4 seed SDs)); a model with 3 or
--            more collapsed targets is flagged, fewer stay ranked (the robust score trims them).
with g as (select * from {{ ref('gains') }}),
per_model as (
    select
        architecture, model_id,
        count(*) as n_targets,
        corr(score_mean, baseline_mean) as profile_corr,
        median(abs(gain)) as median_abs_gain,
        count(*) filter (where gain < -greatest(10, 4 * coalesce(baseline_sd, 0))) as n_collapsed,
        string_agg(dataset_id, ', ' order by dataset_id)
            filter (where gain < -greatest(10, 4 * coalesce(baseline_sd, 0))) as collapsed_targets
    from g
    group by all
),
judged as (
    select *, coalesce(n_targets >= 8 and (profile_corr < 0.8 or median_abs_gain > 5), false) as shifted
    from per_model
)
select
    *,
    (n_collapsed >= 3) as collapsed,
    shifted or n_collapsed >= 3 as flagged,
    case
        when shifted
            then 'off the target profile, values likely under the wrong columns (r=' || round(profile_corr, 2)
                 || ', median |gain| ' || round(median_abs_gain, 1) || ' points)'
        when n_collapsed >= 3
            then 'collapsed runs on ' || n_collapsed || ' targets (' || collapsed_targets || ')'
    end as flag_reason
from judged
order by architecture, model_id
