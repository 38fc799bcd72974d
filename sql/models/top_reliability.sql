-- How stable is the TOP of each architecture's ranking? (docs/reliability.md) `ranking_reliability` describes all
-- models at once, and the many clearly bad or clearly average models make it look high even where the order of
-- the best few is close to chance. Here the targets are split in two halves, each half ranks the models by the
-- leaderboard's ordering rule, and we measure whether the halves agree on the top.
--
-- Cells: gains of unflagged models (model_flags), collapsed cells left out (`gains.collapsed`). Each target's gains
-- are winsorized at median +- clip * max(1.4826 * MAD, 0.1) (clip = var `ranking_clip`) and centered by the
-- target's mean winsorized gain: y = gain_w - target mean, as in winsorized_gains / base_model_effects. Center,
-- scale and target mean are per target, so they are the same in every half. A half's score of a model is the mean
-- of its y over its kept cells in that half (the leaderboard's model effect restricted to the half; shrinkage is
-- left out: with every target present it does not change the order). A model is ranked in a split when it has a
-- kept cell in both halves; ties in the score are broken by md5(model_id) (never alphabetically).
--
-- Split k orders the targets by md5(k || ':' || dataset_id) and puts the first floor(T / 2) in half A, the rest in
-- half B (the splits of ranking_consistency). Per split:
--   p_rank1_in_top10: (1[rank 1 of A is in B's top 10] + 1[rank 1 of B is in A's top 10]) / 2;
--   top10_overlap:    |top10(A) & top10(B)| / 10;
--   top20_spearman:   Spearman (average ranks) between the A and B scores over A's top 20, the same over B's top
--                     20, averaged (not over the union of the two: a model in one top 20 only is there because it
--                     scored higher in that half, which makes the union's correlation negative by selection);
-- Beside them, the all-model figures: all_reliability (ranking_reliability.reliability) and all_spearman
-- (ranking_consistency.half_spearman: the split-half Spearman over every complete unflagged model, raw gains).
-- Each figure is the mean over the n_splits splits. The top-10 figures are NULL with 10 or fewer models, the top-20
-- Spearman with 20 or fewer (they would be trivially 1, or the all-model figure).
--
-- Interval (95%): a delete-a-group jackknife over TARGETS. The targets are cut into G groups (var
-- `top_reliability_groups`, by md5('group:' || dataset_id)); replicate g recomputes the figure with group g's
-- targets removed, using the same n_splits hash orders restricted to the remaining targets (common random numbers,
-- so the replicates differ by the targets, not by split noise). se^2 = (G - 1) / G * sum_g (theta_g - mean_g)^2
-- plus the Monte Carlo variance of the split mean (var over splits / n_splits); the interval is the figure +-
-- t975(G - 1) * se, clamped to the figure's range. It estimates how much the figure would move with another set of
-- targets of the same kind; the spread over splits alone is not an interval for the mean. The interval always
-- holds its point; with se = 0 (every replicate and split agree) it is the point itself.
--
-- Cost: only candidates (see `bounds`) are scored per split; a candidate's y values are one list in a fixed target
-- order and a half is a 0/1 mask list, so a half's score is a dot product and no join multiplies models x targets x
-- splits; the top 20s are bounded max_by aggregates, not sorts. Rows: candidates x (G + 1) x n_splits.
{% set n_splits = var('top_reliability_splits', 50) %}
{% set n_groups = var('top_reliability_groups', 6) %}
with cells as (
    select g.architecture, g.model_id, g.dataset_id, g.gain
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged and not coalesce(g.collapsed, false)
),
center as (select architecture, dataset_id, median(gain) as center from cells group by all),
scale as (
    select c.architecture, c.dataset_id, any_value(m.center) as center,
           greatest(1.4826 * median(abs(c.gain - m.center)), 0.1) as scale
    from cells c join center m using (architecture, dataset_id)
    group by all
),
winsorized as (
    select c.architecture, c.model_id, c.dataset_id,
           least(greatest(c.gain, s.center - {{ var('ranking_clip') }} * s.scale),
                 s.center + {{ var('ranking_clip') }} * s.scale) as gain_w
    from cells c join scale s using (architecture, dataset_id)
),
target_means as (
    select architecture, dataset_id, avg(gain_w) as target_mean from winsorized group by all
),
targets as (
    select architecture, dataset_id,
           row_number() over (partition by architecture order by dataset_id) as j,
           count(*) over (partition by architecture) as t,
           least({{ n_groups }}, count(*) over (partition by architecture)) as n_groups,
           (row_number() over (partition by architecture order by md5('group:' || dataset_id)) - 1)
               % least({{ n_groups }}, count(*) over (partition by architecture)) + 1 as grp
    from target_means
),
centered as (
    select w.architecture, w.model_id, w.dataset_id, w.gain_w - tm.target_mean as y
    from winsorized w join target_means tm using (architecture, dataset_id)
),
dims as (
    select t.architecture, any_value(t.t) as n_targets, any_value(m.n_models) as n_models,
           -- the smallest half over the splits of every replicate
           (any_value(t.t) - max(t.grp_size)) // 2 as min_half
    from (select *, count(*) over (partition by architecture, grp) as grp_size from targets) t
    join (select architecture, count(distinct model_id) as n_models from centered group by all) m using (architecture)
    group by all
),
-- Pruning (exact): a model whose mean over any half can't reach the 20th best score of any half never enters a
-- top 20, so only candidates are scored per split. With h = the smallest number of a model's kept cells in a half
-- (min_half - its missing cells, at least 1), its half score lies between the mean of its h lowest and of its h
-- highest y. The 20th highest lower bound among models with every target (ranked in every split) is below the
-- 20th best score of every half; a model whose upper bound is below it is no candidate.
bounds as (
    select c.architecture, c.model_id, count(*) = any_value(d.n_targets) as complete,
           greatest(any_value(d.min_half) - (any_value(d.n_targets) - count(*)), 1) as h,
           list_avg(list_slice(list_sort(list(c.y), 'DESC'), 1, greatest(any_value(d.min_half) - (any_value(d.n_targets) - count(*)), 1))) as upper_bound,
           list_avg(list_slice(list_sort(list(c.y), 'ASC'), 1, greatest(any_value(d.min_half) - (any_value(d.n_targets) - count(*)), 1))) as lower_bound
    from centered c join dims d using (architecture)
    group by all
),
cutoff as (
    select architecture,
           case when count(*) filter (where complete) >= 20
                then list_sort(list(lower_bound) filter (where complete), 'DESC')[20] end as lower_20
    from bounds group by all
),
candidates as (
    select b.architecture, b.model_id, b.complete
    from bounds b join cutoff c using (architecture)
    where c.lower_20 is null or b.upper_bound >= c.lower_20
),
-- every candidate's centered gains as one list in target order (0 where the cell is missing), its presence mask,
-- and a tie-break index by md5(model_id)
model_lists as (
    select m.architecture, m.model_id, any_value(m.complete) as complete,
           any_value(r.tiebreak) as tiebreak,
           list(coalesce(c.y, 0.0) order by t.j) as y,
           list(case when c.y is null then 0.0 else 1.0 end order by t.j) as present
    from candidates m
    join (select architecture, model_id,
                 row_number() over (partition by architecture order by md5(model_id)) as tiebreak
          from bounds) r using (architecture, model_id)
    join targets t using (architecture)
    left join centered c using (architecture, model_id, dataset_id)
    group by all
),
splits as (select range as k from range({{ n_splits }})),
replicates as (select range as g from range({{ n_groups }} + 1)),  -- g = 0: all targets; g >= 1: group g removed
halves as (
    select t.architecture, r.g, s.k, t.j,
           t.grp <> r.g as kept,
           row_number() over (partition by t.architecture, r.g, s.k, t.grp <> r.g
                              order by md5(s.k::varchar || ':' || t.dataset_id))
               <= (t.t - count(*) filter (where t.grp = r.g) over (partition by t.architecture, r.g, s.k)) // 2
               as first_half
    from targets t
    cross join splits s
    join replicates r on r.g <= t.n_groups
),
masks as (
    select architecture, g, k,
           list(case when kept and first_half then 1.0 else 0.0 end order by j) as mask_a,
           list(case when kept and not first_half then 1.0 else 0.0 end order by j) as mask_b,
           count(*) filter (where kept and first_half) as n_a,
           count(*) filter (where kept and not first_half) as n_b
    from halves
    group by all
),
half_sums as (
    select k.architecture, k.g, k.k, m.model_id, m.tiebreak,
           list_dot_product(m.y, k.mask_a) as s_a, list_dot_product(m.y, k.mask_b) as s_b,
           case when m.complete then k.n_a else list_dot_product(m.present, k.mask_a) end as n_a,
           case when m.complete then k.n_b else list_dot_product(m.present, k.mask_b) end as n_b
    from model_lists m join masks k using (architecture)
),
half_scores as (
    select architecture, g, k, model_id, tiebreak, s_a / n_a as score_a, s_b / n_b as score_b
    from half_sums where n_a > 0 and n_b > 0
),
tops as (
    -- top 20 of each half (tie-break index as a second key, so equal scores are ordered by md5, not by name)
    select architecture, g, k,
           max_by(tiebreak, {'s': score_a, 't': -tiebreak}, 20) as top_a,
           max_by(tiebreak, {'s': score_b, 't': -tiebreak}, 20) as top_b
    from half_scores
    group by all
),
per_split_top as (
    select architecture, g, k, top_a, top_b,
           (list_contains(top_b[1:10], top_a[1])::int + list_contains(top_a[1:10], top_b[1])::int) / 2.0
               as p_rank1_in_top10,
           len(list_intersect(top_a[1:10], top_b[1:10])) / 10.0 as top10_overlap
    from tops
),
top20_rows as (
    -- each half's top 20 with the members' scores in both halves: side 'a' = A's top 20, side 'b' = B's
    select u.architecture, u.g, u.k, u.side, h.score_a as a, h.score_b as b
    from (select architecture, g, k, 'a' as side, unnest(top_a) as tiebreak from tops
          union all
          select architecture, g, k, 'b' as side, unnest(top_b) as tiebreak from tops) u
    join half_scores h using (architecture, g, k, tiebreak)
),
top20_ranks as (
    select architecture, g, k, side,
           rank() over (partition by architecture, g, k, side order by a)
               + (count(*) over (partition by architecture, g, k, side, a) - 1) / 2.0 as ra,
           rank() over (partition by architecture, g, k, side order by b)
               + (count(*) over (partition by architecture, g, k, side, b) - 1) / 2.0 as rb
    from top20_rows
),
top20_corr as (
    select architecture, g, k, avg(rho) as top20_spearman
    from (select architecture, g, k, side, corr(ra, rb) as rho from top20_ranks group by all) where not isnan(rho)
    group by all
),
per_split as (
    select p.architecture, p.g, p.k, p.p_rank1_in_top10, p.top10_overlap, c.top20_spearman
    from per_split_top p left join top20_corr c using (architecture, g, k)
),
-- per replicate: the split means; for g = 0 also the variance over splits / n_splits (Monte Carlo error)
per_replicate as (
    select architecture, g, count(*) as n_splits,
    {%- for f in ['p_rank1_in_top10', 'top10_overlap', 'top20_spearman'] %}
           avg({{ f }}) as {{ f }}, var_samp({{ f }}) / count({{ f }}) as {{ f }}_mc,
    {%- endfor %}
    from per_split group by all
),
jackknife as (
    select architecture, count(*) as n_groups,
    {%- for f in ['p_rank1_in_top10', 'top10_overlap', 'top20_spearman'] %}
           (count(*) - 1) / count(*) * sum(({{ f }} - avg_{{ f }}) ^ 2) as {{ f }}_jk,
    {%- endfor %}
    from (select *,
          {%- for f in ['p_rank1_in_top10', 'top10_overlap', 'top20_spearman'] %}
                 avg({{ f }}) over (partition by architecture) as avg_{{ f }},
          {%- endfor %}
          from per_replicate where g > 0)
    group by all
),
figures as (
    select d.architecture, d.n_models, d.n_targets, p.n_splits, j.n_groups, {{ t975('j.n_groups - 1') }} as t_q,
    {%- for f, min_models in [('p_rank1_in_top10', 10), ('top10_overlap', 10), ('top20_spearman', 20)] %}
           case when d.n_models > {{ min_models }} then p.{{ f }} end as {{ f }},
           case when d.n_models > {{ min_models }} then sqrt(j.{{ f }}_jk + coalesce(p.{{ f }}_mc, 0)) end
               as {{ f }}_se,
    {%- endfor %}
    from dims d
    left join per_replicate p on p.architecture = d.architecture and p.g = 0
    left join jackknife j on j.architecture = d.architecture
)
select
    f.architecture, f.n_models, f.n_targets, f.n_splits, f.n_groups,
{%- for f, lo in [('p_rank1_in_top10', 0), ('top10_overlap', 0), ('top20_spearman', -1)] %}
    f.{{ f }},
    greatest(f.{{ f }} - f.t_q * f.{{ f }}_se, {{ lo }}.0) as {{ f }}_low,
    least(f.{{ f }} + f.t_q * f.{{ f }}_se, 1.0) as {{ f }}_high,
{%- endfor %}
    r.reliability as all_reliability,
    c.half_spearman as all_spearman,
    {{ var('ranking_clip') }}::double as clip
from figures f
left join {{ ref('ranking_reliability') }} r using (architecture)
left join {{ ref('ranking_consistency') }} c using (architecture)
order by f.architecture
