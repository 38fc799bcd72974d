-- The gains the ranking is estimated from: each target's gains winsorized at its center +- clip * scale, over the
-- kept cells: models that pass the integrity flags, cells that did not collapse (gains.collapsed; a collapsed
-- finetune is a failed run, left out here as the collapsed pretrained seeds are left out of the baseline).
-- center is the median gain on the target, scale 1.4826 * MAD (a robust SD; at least 0.1 points). A few models
-- gain 10-25 points on one target where most gain 1-2 (interaction with the target, not base quality), and a row
-- whose values are partly shifted across columns can slip past the flags: clipping keeps either from deciding the
-- ranking. clip is the dbt var `ranking_clip`, chosen by nested held-out evaluation (docs/ranking.md).
with g as (
    select g.architecture, g.model_id, g.dataset_id, g.gain
    from {{ ref('gains') }} g
    join {{ ref('model_flags') }} f using (architecture, model_id)
    where not f.flagged and not g.collapsed
),
center as (
    select architecture, dataset_id, median(gain) as center from g group by all
),
scale as (
    select g.architecture, g.dataset_id, any_value(c.center) as center,
           greatest(1.4826 * median(abs(g.gain - c.center)), 0.1) as scale
    from g join center c using (architecture, dataset_id)
    group by all
)
select
    g.architecture, g.model_id, g.dataset_id, g.gain, s.center, s.scale,
    least(greatest(g.gain, s.center - {{ var('ranking_clip') }} * s.scale),
          s.center + {{ var('ranking_clip') }} * s.scale) as gain_w
from g join scale s using (architecture, dataset_id)
order by g.architecture, g.model_id, g.dataset_id
