-- Are fused starting points (ColD-Fusion: many source datasets merged into one model) better than models trained
-- on a single source? Choshen et al. 2023 find fused models among the best starts. docs/analyses.md.
--
-- fused: the model id contains 'ColD-Fusion' (any case), or a hub_models row with role 'fused'. single: every other
-- unflagged intermediate model of the architecture. Per group: the mean over models of mean_gain (raw mean gain over
-- the targets) and of posterior_gain (the shrunken effect the ranking orders by), each with a t-interval over
-- models; the difference fused - single with a Welch interval (t quantile at the floor of the Welch df).
-- n_fused_top10: how many of ranks 1-10 are fused. Models are treated as independent draws; ColD-Fusion
-- checkpoints of one run (itrN-seedS) are not, so the intervals are, if anything, too narrow for the fused side.
with models as (
    select e.architecture, e.model_id, e.mean_gain, e.posterior_gain, e.rank,
           e.model_id ilike '%cold-fusion%' or coalesce(h.role = 'fused', false) as fused
    from {{ ref('base_model_effects') }} e
    left join {{ source('warehouse', 'hub_models') }} h using (architecture, model_id)
    where not e.flagged and coalesce(h.role, '') <> 'pretrained'
),
groups as (
    select architecture,
           count(*) filter (where fused) as n_fused,
           count(*) filter (where not fused) as n_single,
           avg(mean_gain) filter (where fused) as fused_mean,
           var_samp(mean_gain) filter (where fused) as fused_var,
           avg(mean_gain) filter (where not fused) as single_mean,
           var_samp(mean_gain) filter (where not fused) as single_var,
           avg(posterior_gain) filter (where fused) as fused_post,
           var_samp(posterior_gain) filter (where fused) as fused_post_var,
           avg(posterior_gain) filter (where not fused) as single_post,
           var_samp(posterior_gain) filter (where not fused) as single_post_var,
           count(*) filter (where fused and rank <= 10) as n_fused_top10
    from models group by all
),
welch as (
    select *,
           fused_var / n_fused + single_var / n_single as diff_var,
           fused_post_var / n_fused + single_post_var / n_single as diff_post_var,
           floor((fused_var / n_fused + single_var / n_single) ^ 2
                 / nullif((fused_var / n_fused) ^ 2 / (n_fused - 1) + (single_var / n_single) ^ 2 / (n_single - 1), 0))
               as diff_df,
           floor((fused_post_var / n_fused + single_post_var / n_single) ^ 2
                 / nullif((fused_post_var / n_fused) ^ 2 / (n_fused - 1)
                          + (single_post_var / n_single) ^ 2 / (n_single - 1), 0)) as diff_post_df
    from groups
)
select
    architecture, n_fused, n_single,
    fused_mean as fused_mean_gain,
    fused_mean - {{ t975('(n_fused - 1)') }} * sqrt(fused_var / n_fused) as fused_low,
    fused_mean + {{ t975('(n_fused - 1)') }} * sqrt(fused_var / n_fused) as fused_high,
    single_mean as single_mean_gain,
    single_mean - {{ t975('(n_single - 1)') }} * sqrt(single_var / n_single) as single_low,
    single_mean + {{ t975('(n_single - 1)') }} * sqrt(single_var / n_single) as single_high,
    fused_mean - single_mean as diff_mean_gain,
    fused_mean - single_mean - {{ t975('(diff_df)') }} * sqrt(diff_var) as diff_low,
    fused_mean - single_mean + {{ t975('(diff_df)') }} * sqrt(diff_var) as diff_high,
    fused_post as fused_posterior_gain,
    fused_post - {{ t975('(n_fused - 1)') }} * sqrt(fused_post_var / n_fused) as fused_posterior_low,
    fused_post + {{ t975('(n_fused - 1)') }} * sqrt(fused_post_var / n_fused) as fused_posterior_high,
    single_post as single_posterior_gain,
    single_post - {{ t975('(n_single - 1)') }} * sqrt(single_post_var / n_single) as single_posterior_low,
    single_post + {{ t975('(n_single - 1)') }} * sqrt(single_post_var / n_single) as single_posterior_high,
    fused_post - single_post as diff_posterior_gain,
    fused_post - single_post - {{ t975('(diff_post_df)') }} * sqrt(diff_post_var) as diff_posterior_low,
    fused_post - single_post + {{ t975('(diff_post_df)') }} * sqrt(diff_post_var) as diff_posterior_high,
    n_fused_top10
from welch
order by architecture
