-- Gain of starting from a model instead of the pretrained one, per (architecture, model, target).
--
-- The baseline is robust: a pretrained seed that collapsed is left out, and the same cut-off marks a collapsed
-- finetuned cell. Per (architecture, target) the pretrained seeds are judged in two ways (docs/data_quality.md):
--
-- 1. Distance (a lone bad seed): with m and s the median and 1.4826 * MAD of the seeds, a score below
--    m - max(10 points, 4 s) collapsed.
-- 2. Two clusters (most or many seeds collapsed, where the median sits inside the collapsed cluster and rule 1
--    fails): sort the seeds; a gap between two consecutive seeds splits them into a lower and an upper cluster when
--    both hold at least 2 seeds, the gap is at least 5 points and at least 3 pooled within-cluster SDs. The pooled
--    SD leaves out the seeds rule 1 already calls collapsed, so junk far below the lower cluster does not widen it.
--    A constant predictor scores the same on the same test set: seeds collapsed to it tie, their cluster's spread
--    is 0, and the gap only has to clear the healthy seeds' own spread. The highest such gap wins; the upper
--    cluster is the healthy one. Constants: with 3 SDs a single unimodal 20-seed sample (normal, t with 3 or 5
--    df, skewed gamma) splits in about 2% of simulated draws at most; 5 points is half the 10-point floor of
--    rule 1 and about 3 test examples on the smallest published target (cb, 56 examples), so a tie on a coarse
--    score grid cannot make a split.
--
-- Cut-off: with one cluster, rule 1 as above. With two, taken from the healthy cluster: m_h - max(10, 4 s_h) with
-- m_h, s_h its median and 1.4826 * MAD, raised to half a point above the lower cluster's highest seed when that is
-- higher (the half point is the tolerance the majority-share rule uses). Where the dataset's majority share is
-- known (local datasets), a score within half a point of it collapsed as well.
-- `baseline_robust` (the mean of the seeds that did not collapse) is what the gain is taken over; `baseline_mean`
-- keeps the plain mean of all seeds for comparison. Collapsed finetuned cells are marked (`collapsed`), never
-- dropped. gain_se = baseline_robust_sd * sqrt(1/n_seeds + 1/n_baseline_used): seed noise from the pretrained seeds
-- (a model's own 1-3 seeds are too few to estimate it). Runs of a user's own target (origin 'user') stay out.
-- The pretrained seeds are read from the runs (each seed counts); the finetuned cells' means from finetune_cells.
{% set split_min_gap = 5 %}
{% set split_min_sds = 3 %}
{% set split_min_seeds = 2 %}
with runs as (
    select architecture, model_id, dataset_id, score
    from {{ source('warehouse', 'finetune_runs') }}
    where status = 'ok' and score is not null and origin <> 'user'
),
pretrained as (
    select architecture, model_id from {{ source('warehouse', 'hub_models') }} where role = 'pretrained'
),
majority as (
    select dataset_id, any_value(majority_share) as majority_share
    from {{ source('warehouse', 'datasets') }}
    where metric = 'accuracy' and majority_share is not null
    group by all
),
seeds as (
    select r.architecture, r.dataset_id, r.score
    from runs r join pretrained p using (architecture, model_id)
),
seed_center as (
    select architecture, dataset_id, median(score) as seed_median, count(*) as n_baseline,
           avg(score) as baseline_mean, stddev_samp(score) as baseline_sd
    from seeds group by all
),
seed_spread as (
    select s.architecture, s.dataset_id, 1.4826 * median(abs(s.score - c.seed_median)) as seed_mad_sd
    from seeds s join seed_center c using (architecture, dataset_id)
    group by all
),
-- rule 1 on all seeds
distance as (
    select c.*, c.seed_median - greatest(10, 4 * coalesce(p.seed_mad_sd, 0)) as distance_below
    from seed_center c join seed_spread p using (architecture, dataset_id)
),
-- the seeds in order; `dev` is centered on the median (no cancellation in the sums of squares), `clean` leaves
-- out what rule 1 calls collapsed from the pooled SD
ordered as (
    select s.architecture, s.dataset_id, s.score, d.n_baseline as n,
           s.score - d.seed_median as dev, s.score >= d.distance_below as clean,
           row_number() over w as rn,
           lead(s.score) over w - s.score as gap
    from seeds s join distance d using (architecture, dataset_id)
    window w as (partition by s.architecture, s.dataset_id order by s.score)
),
-- for the gap above seed rn: the lower cluster is seeds 1..rn, the upper rn+1..n
cumulative as (
    select *,
           sum(clean::int) over low as c_low, sum(case when clean then dev end) over low as s1_low,
           sum(case when clean then dev * dev end) over low as s2_low,
           sum(clean::int) over whole as c_all, sum(case when clean then dev end) over whole as s1_all,
           sum(case when clean then dev * dev end) over whole as s2_all
    from ordered
    window low as (partition by architecture, dataset_id order by rn rows between unbounded preceding and current row),
           whole as (partition by architecture, dataset_id)
),
candidates as (
    select architecture, dataset_id, rn, score, gap,
           c_low, c_all - c_low as c_high,
           greatest(coalesce(s2_low, 0) - coalesce(s1_low * s1_low / nullif(c_low, 0), 0), 0) as ss_low,
           greatest(coalesce(s2_all - s2_low, 0)
                    - coalesce((s1_all - s1_low) * (s1_all - s1_low) / nullif(c_all - c_low, 0), 0), 0) as ss_high
    from cumulative
    where rn >= {{ split_min_seeds }} and n - rn >= {{ split_min_seeds }} and gap >= {{ split_min_gap }}
),
splits as (
    select architecture, dataset_id, max(rn) as n_low, arg_max(score, rn) as low_top
    from candidates
    where gap >= {{ split_min_sds }} * coalesce(sqrt((ss_low + ss_high)
              / nullif(greatest(c_low - 1, 0) + greatest(c_high - 1, 0), 0)), 0)
    group by all
),
healthy_center as (
    select o.architecture, o.dataset_id, median(o.score) as healthy_median
    from ordered o join splits s using (architecture, dataset_id)
    where o.rn > s.n_low
    group by all
),
healthy as (
    select o.architecture, o.dataset_id, any_value(s.low_top) as low_top,
           any_value(h.healthy_median) as healthy_median,
           1.4826 * median(abs(o.score - h.healthy_median)) as healthy_mad_sd
    from ordered o join splits s using (architecture, dataset_id) join healthy_center h using (architecture, dataset_id)
    where o.rn > s.n_low
    group by all
),
rule as (
    select d.*, greatest(
               case when h.low_top is null then d.distance_below
                    else greatest(h.healthy_median - greatest(10, 4 * coalesce(h.healthy_mad_sd, 0)), h.low_top + 0.5)
               end,
               coalesce(100 * m.majority_share + 0.5, -1e9)
           ) as collapse_below
    from distance d
    left join healthy h using (architecture, dataset_id)
    left join majority m using (dataset_id)
),
baseline as (
    select r.architecture, r.dataset_id,
           any_value(r.baseline_mean) as baseline_mean, any_value(r.baseline_sd) as baseline_sd,
           any_value(r.n_baseline) as n_baseline, any_value(r.collapse_below) as collapse_below,
           avg(s.score) filter (where s.score >= r.collapse_below) as baseline_robust,
           stddev_samp(s.score) filter (where s.score >= r.collapse_below) as baseline_robust_sd,
           count(*) filter (where s.score >= r.collapse_below) as n_baseline_used
    from rule r join seeds s using (architecture, dataset_id)
    group by all
),
cells as (
    -- the finetuned cells, aggregated from the same runs by the incremental model finetune_cells
    select c.architecture, c.model_id, c.dataset_id, c.n_runs as n_seeds, c.score_mean
    from {{ ref('finetune_cells') }} c anti join pretrained p using (architecture, model_id)
)
select
    c.architecture, c.model_id, c.dataset_id, c.n_seeds, c.score_mean,
    b.baseline_mean, b.baseline_sd, b.n_baseline,
    b.baseline_robust, b.baseline_robust_sd, b.n_baseline_used, b.n_baseline - b.n_baseline_used as n_baseline_collapsed,
    b.collapse_below,
    c.score_mean < b.collapse_below as collapsed,
    c.score_mean - b.baseline_robust as gain,
    b.baseline_robust_sd * sqrt(1.0 / c.n_seeds + 1.0 / b.n_baseline_used) as gain_se
from cells c
join baseline b using (architecture, dataset_id)
where b.n_baseline_used > 0
order by c.architecture, c.model_id, c.dataset_id
