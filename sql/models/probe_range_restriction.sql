-- How much does the probe's validation understate it? The published experiment finetuned mostly the models the
-- MNLI linear probe ranked high, so among finetuned models the probe varies less than among all probed models, and
-- a correlation measured on a restricted range is attenuated. docs/analyses.md.
--
-- Per architecture, probe method and proxy dataset:
--   n_models:      unflagged finetuned models with both a probe score and a mean gain (base_model_effects);
--   n_probed:      every model probed for the architecture: those finetuned models plus the probe-only models
--                  (published tables hold rows with an mnli_lp and no target scores; the importer loads them into
--                  probe_scores). Flagged models and failed probes (score <= 0: an accuracy of 0 on a 3-class
--                  task is no measurement) are left out;
--   sd_finetuned, sd_all: the probe's SD in the two sets; u = sd_all / sd_finetuned;
--   pearson:       observed r of probe vs mean_gain among the finetuned models;
--   pearson_corrected: Thorndike Case II, r_c = r u / sqrt(1 - r^2 + r^2 u^2): the r expected over all probed
--                  models if selection was on the probe alone and the relation is linear with even scatter.
--   n_skipped_above_min: probe-only models scoring at least the lowest finetuned model. Case II assumes the
--                  finetuned set was cut from the pool by the probe; many such models say it was not.
-- u < 1 (the finetuned models vary more than the whole pool) is reported as it is; the correction then shrinks r.
with effects as (
    select architecture, model_id, mean_gain from {{ ref('base_model_effects') }} where not flagged and not is_pretrained
),
flagged as (select architecture, model_id from {{ ref('model_flags') }} where flagged),
pretrained as (
    select architecture, model_id from {{ source('warehouse', 'hub_models') }} where role = 'pretrained'
),
probes as (
    select p.architecture, p.model_id, p.method, p.proxy_dataset, p.score, e.mean_gain
    from {{ source('warehouse', 'probe_scores') }} p
    left join effects e using (architecture, model_id)
    anti join flagged f using (architecture, model_id)
    anti join pretrained r using (architecture, model_id)
    where p.score > 0
),
stats as (
    select architecture, method, proxy_dataset,
           count(*) filter (where mean_gain is not null) as n_models,
           count(*) as n_probed,
           stddev_samp(score) filter (where mean_gain is not null) as sd_finetuned,
           stddev_samp(score) as sd_all,
           corr(score, mean_gain) as pearson,
           min(score) filter (where mean_gain is not null) as min_finetuned
    from probes group by all
)
select
    architecture, method, proxy_dataset, n_models, n_probed, sd_finetuned, sd_all,
    sd_all / nullif(sd_finetuned, 0) as u,
    pearson,
    pearson * (sd_all / nullif(sd_finetuned, 0))
        / sqrt(1 - pearson ^ 2 + pearson ^ 2 * (sd_all / nullif(sd_finetuned, 0)) ^ 2) as pearson_corrected,
    (select count(*) from probes p
     where p.architecture = s.architecture and p.method = s.method and p.proxy_dataset = s.proxy_dataset
       and p.mean_gain is null and p.score >= s.min_finetuned) as n_skipped_above_min
from stats s
where n_models >= 3
order by architecture, method, proxy_dataset
