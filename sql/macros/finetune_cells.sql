{#- A run's contribution to `finetune_cells`: its cell and score, which is all the table is made of. Summed (as
    HUGEINT, so equal values never cancel as they would in an XOR) it is a checksum of the multiset of runs. -#}
{% macro finetune_run_hash() -%}
hash(architecture, model_id, dataset_id, score)::hugeint
{%- endmacro %}

{#- The pre-hook of `finetune_cells` (incremental runs only): empty the table unless the eligible runs are exactly
    the ones it holds plus the rows past its highest rowid (same count, same sum of run hashes); the build that
    follows then re-aggregates every cell. -#}
{% macro finetune_cells_guard() -%}
{%- if is_incremental() -%}
delete from {{ this }}
where (
    with runs as (
        select rowid as row_number, {{ finetune_run_hash() }} as run_hash
        from {{ source('warehouse', 'finetune_runs') }}
        where status = 'ok' and score is not null and origin <> 'user'
    ),
    held as (
        select coalesce(sum(n_runs), 0) as n, coalesce(sum(checksum), 0::hugeint) as x, max(last_row) as watermark
        from {{ this }}
    ),
    now as (
        select count(*) as n, coalesce(sum(run_hash), 0::hugeint) as x,
               count(*) filter (where r.row_number > h.watermark) as n_new,
               coalesce(sum(run_hash) filter (where r.row_number > h.watermark), 0::hugeint) as x_new
        from runs r, held h
    )
    select not (now.n = held.n + now.n_new and now.x = held.x + now.x_new) from now, held
)
{%- endif -%}
{%- endmacro %}
