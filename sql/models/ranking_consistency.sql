-- Do the targets agree on which starting points are good? If they do, a ranking measured on some targets carries
-- over to a new one; if not, "the best base model" depends on the target (Choshen et al. 2023). docs/analyses.md.
--
-- Over the unflagged models with a gain on every target of the architecture (the complete block; no imputation):
--   kendalls_w: Kendall's coefficient of concordance of the targets' rankings of the models. Each target ranks the
--     models by raw gain with average ranks for ties; W = 12 S / (T^2 (M^3 - M) - T sum_t sum_ties (t^3 - t)), S the
--     sum over models of (rank sum - T (M + 1) / 2)^2: 1 = every target orders the models alike, 0 = no agreement.
--   half_spearman: for n_splits deterministic random half splits of the targets, the Spearman correlation (average
--     ranks) between the models' mean gains on one half and on the other; the mean over splits and its 2.5 / 97.5
--     percentiles (the spread over splits, not a confidence interval). Split k orders the targets by
--     md5(k || ':' || dataset_id) and puts the first floor(T / 2) in half A, the rest in half B.
with cells as (
    select g.architecture, g.model_id, g.dataset_id, g.gain
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged
),
n_targets as (select architecture, count(distinct dataset_id) as t from cells group by all),
complete as (
    select c.architecture, c.model_id from cells c join n_targets n using (architecture)
    group by all having count(*) = any_value(n.t)
),
block as (select c.* from cells c semi join complete k using (architecture, model_id)),
dims as (
    select architecture, count(distinct model_id) as m, count(distinct dataset_id) as t from block group by all
),
ranked as (
    -- average rank within the target: position of the first tie + (tie size - 1) / 2
    select *,
           rank() over (partition by architecture, dataset_id order by gain)
               + (count(*) over (partition by architecture, dataset_id, gain) - 1) / 2.0 as r
    from block
),
ties as (
    select architecture, sum(n ^ 3 - n) as tie_sum
    from (select architecture, dataset_id, gain, count(*) as n from block group by all)
    group by all
),
rank_sums as (select architecture, model_id, sum(r) as rank_sum from ranked group by all),
concordance as (
    select s.architecture, sum((s.rank_sum - d.t * (d.m + 1) / 2.0) ^ 2) as s_dev,
           any_value(d.m) as m, any_value(d.t) as t
    from rank_sums s join dims d using (architecture)
    group by all
),
splits as (select range as k from range({{ var('consistency_splits', 100) }})),
-- The halves as 0/1 masks over each architecture's targets in a fixed order, and each model's gains as a list in
-- that order: a half's mean is a dot product, so the splits never multiply the block's rows (at Hub scale a join of
-- the block with every split would hold models x targets x splits rows).
targets as (
    select architecture, dataset_id, row_number() over (partition by architecture order by dataset_id) as j
    from (select distinct architecture, dataset_id from block)
),
gain_lists as (
    select b.architecture, b.model_id, list(b.gain order by t.j) as gains
    from block b join targets t using (architecture, dataset_id)
    group by all
),
halves as (
    select t.architecture, s.k, t.j,
           row_number() over (partition by t.architecture, s.k
                              order by md5(s.k::varchar || ':' || t.dataset_id)) <= d.t // 2 as in_a
    from targets t
    join dims d using (architecture)
    cross join splits s
),
masks as (
    select architecture, k,
           list(case when in_a then 1.0 else 0.0 end order by j) as mask_a,
           list(case when in_a then 0.0 else 1.0 end order by j) as mask_b,
           count(*) filter (where in_a) as n_a, count(*) filter (where not in_a) as n_b
    from halves
    group by all
),
half_means as (
    select g.architecture, m.k, g.model_id,
           list_dot_product(g.gains, m.mask_a) / m.n_a as mean_a,
           list_dot_product(g.gains, m.mask_b) / m.n_b as mean_b
    from gain_lists g join masks m using (architecture)
),
half_ranks as (
    select *,
           rank() over (partition by architecture, k order by mean_a)
               + (count(*) over (partition by architecture, k, mean_a) - 1) / 2.0 as ra,
           rank() over (partition by architecture, k order by mean_b)
               + (count(*) over (partition by architecture, k, mean_b) - 1) / 2.0 as rb
    from half_means
),
per_split as (
    select architecture, k, corr(ra, rb) as spearman from half_ranks group by all
)
select
    c.architecture,
    c.m as n_models,
    c.t as n_targets,
    12 * c.s_dev / (c.t ^ 2 * (c.m ^ 3 - c.m) - c.t * coalesce(x.tie_sum, 0)) as kendalls_w,
    avg(p.spearman) as half_spearman,
    quantile_cont(p.spearman, 0.025) as half_spearman_low,
    quantile_cont(p.spearman, 0.975) as half_spearman_high,
    count(p.k) as n_splits
from concordance c
left join ties x using (architecture)
join per_split p using (architecture)
where c.m >= 3 and c.t >= 2
group by all
order by c.architecture
