-- Does a fused start point beat the best of the models it was merged from? One row per fused model (hub_models
-- role 'fused', its `members` list): docs/fusion.md.
--
-- Cells are seed means of successful runs (origin <> 'user'). Only targets on which the fused model and every
-- member have a cell count (`n_targets`). best_member: the member with the highest mean score over those targets
-- (chosen on the same targets it is compared on, which favours the member: a conservative test for fusion).
-- diff = fused - best member per target; diff_mean with its 95% t-interval over targets (df n_targets - 1; NULL
-- with one target), n_fused_better: targets where diff > 0. diff_vs_members_mean: fused - the mean of all members.
-- gain_over_pretrained: fused - the pretrained base on the same targets (NULL when the base has no cells).
with cells as (
    select architecture, model_id, dataset_id, avg(score) as score
    from {{ source('warehouse', 'finetune_runs') }}
    where status = 'ok' and score is not null and origin <> 'user'
    group by all
),
fused as (
    select architecture, model_id as fused_id, base_model, members, len(list_distinct(members)) as n_members
    from {{ source('warehouse', 'hub_models') }}
    where role = 'fused' and members is not null and len(members) > 0
),
member_cells as (
    select m.architecture, m.fused_id, m.member_id, c.dataset_id, c.score
    from (select architecture, fused_id, unnest(list_distinct(members)) as member_id from fused) m
    join cells c on c.architecture = m.architecture and c.model_id = m.member_id
),
shared as (
    -- targets where the fused model and all its members have a cell
    select f.architecture, f.fused_id, fc.dataset_id, fc.score as fused_score
    from fused f
    join cells fc on fc.architecture = f.architecture and fc.model_id = f.fused_id
    join member_cells mc on mc.architecture = f.architecture and mc.fused_id = f.fused_id
                        and mc.dataset_id = fc.dataset_id
    group by all
    having count(distinct mc.member_id) = any_value(f.n_members)
),
member_means as (
    select mc.architecture, mc.fused_id, mc.member_id, avg(mc.score) as mean_score
    from member_cells mc join shared s using (architecture, fused_id, dataset_id)
    group by all
),
best as (
    select * from member_means
    qualify row_number() over (partition by architecture, fused_id order by mean_score desc, member_id) = 1
),
paired as (
    select s.architecture, s.fused_id, s.dataset_id, s.fused_score,
           b.member_id as best_member,
           bc.score as best_score,
           s.fused_score - bc.score as diff,
           s.fused_score - (select avg(mc.score) from member_cells mc
                            where mc.architecture = s.architecture and mc.fused_id = s.fused_id
                              and mc.dataset_id = s.dataset_id) as diff_members_mean,
           s.fused_score - pc.score as gain
    from shared s
    join best b using (architecture, fused_id)
    join member_cells bc on bc.architecture = s.architecture and bc.fused_id = s.fused_id
                        and bc.member_id = b.member_id and bc.dataset_id = s.dataset_id
    join fused f using (architecture, fused_id)
    left join cells pc on pc.architecture = s.architecture and pc.model_id = f.base_model
                      and pc.dataset_id = s.dataset_id
),
summary as (
    select architecture, fused_id,
           any_value(best_member) as best_member,
           count(*) as n_targets,
           avg(fused_score) as fused_mean_score,
           avg(best_score) as best_member_mean_score,
           avg(diff) as diff_mean,
           stddev_samp(diff) as diff_sd,
           count(*) filter (where diff > 0) as n_fused_better,
           avg(diff_members_mean) as diff_vs_members_mean,
           stddev_samp(diff_members_mean) as diff_members_sd,
           avg(gain) as gain_over_pretrained
    from paired group by all
)
select
    s.architecture, s.fused_id as model_id, f.n_members, f.members, s.best_member, s.n_targets,
    s.fused_mean_score, s.best_member_mean_score,
    s.diff_mean,
    {{ t_bounds('s.diff_mean', 's.diff_sd / sqrt(s.n_targets)', 's.n_targets - 1', 'diff_low', 'diff_high') }},
    s.n_fused_better,
    s.diff_vs_members_mean,
    {{ t_bounds('s.diff_vs_members_mean', 's.diff_members_sd / sqrt(s.n_targets)', 's.n_targets - 1',
                'diff_vs_members_low', 'diff_vs_members_high') }},
    s.gain_over_pretrained
from summary s
join fused f using (architecture, fused_id)
order by s.architecture, s.fused_id
