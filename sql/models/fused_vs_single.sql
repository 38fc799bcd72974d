-- Are fused starting points (ColD-Fusion: many source datasets merged into one model) better than models trained
-- on a single source? Choshen et al. 2023 find fused models among the best starts. docs/analyses.md.
--
-- fused: the model id contains 'ColD-Fusion' (any case), or a hub_models row with role 'fused'. single: every other
-- unflagged intermediate model of the architecture. Per group: the mean over models of mean_gain (the leaderboard's
-- gain: mean over the model's kept cells), with a t-interval over models; the difference fused - single with a Welch interval (t quantile at the floor of the Welch df).
-- n_fused_top10: how many of ranks 1-10 are fused. Models are treated as independent draws; ColD-Fusion
-- checkpoints of one run (itrN-seedS) are not, so the intervals are, if anything, too narrow for the fused side.
with models as (
    select e.architecture, e.model_id, e.mean_gain, e.rank,
           e.model_id ilike '%cold-fusion%' or coalesce(h.role = 'fused', false) as fused
    from {{ ref('base_model_effects') }} e
    left join {{ source('warehouse', 'hub_models') }} h using (architecture, model_id)
    where not e.flagged and not e.is_pretrained and coalesce(h.role, '') <> 'pretrained'
),
groups as (
    select architecture,
           count(*) filter (where fused) as n_fused,
           count(*) filter (where not fused) as n_single,
           avg(mean_gain) filter (where fused) as fused_mean,
           var_samp(mean_gain) filter (where fused) as fused_var,
           avg(mean_gain) filter (where not fused) as single_mean,
           var_samp(mean_gain) filter (where not fused) as single_var,
           count(*) filter (where fused and rank <= 10) as n_fused_top10
    from models group by all
),
welch as (
    select *,
           fused_var / n_fused + single_var / n_single as diff_var,
           {{ welch_df('fused_var', 'n_fused', 'single_var', 'n_single') }} as diff_df
    from groups
)
select
    architecture, n_fused, n_single,
    fused_mean as fused_mean_gain,
    {{ t_bounds('fused_mean', 'sqrt(fused_var / n_fused)', 'n_fused - 1', 'fused_low', 'fused_high') }},
    single_mean as single_mean_gain,
    {{ t_bounds('single_mean', 'sqrt(single_var / n_single)', 'n_single - 1', 'single_low', 'single_high') }},
    fused_mean - single_mean as diff_mean_gain,
    {{ t_bounds('fused_mean - single_mean', 'sqrt(diff_var)', 'diff_df', 'diff_low', 'diff_high') }},
    n_fused_top10
from welch
order by architecture
