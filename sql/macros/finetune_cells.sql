{#- What identifies a run's contribution to `finetune_cells`: its key, cell and score. -#}
{% macro finetune_run_hash() -%}
hash(run_id, architecture, model_id, dataset_id, score)
{%- endmacro %}

{#- The pre-hook of `finetune_cells` (incremental runs only): empty the table unless the eligible runs are exactly
    the ones it holds plus the rows past its highest rowid (same count, same XOR of run hashes); the build that
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
        select coalesce(sum(n_runs), 0) as n, coalesce(bit_xor(checksum), 0::ubigint) as x, max(last_row) as watermark
        from {{ this }}
    ),
    now as (
        select count(*) as n, coalesce(bit_xor(run_hash), 0::ubigint) as x,
               count(*) filter (where r.row_number > h.watermark) as n_new,
               coalesce(bit_xor(run_hash) filter (where r.row_number > h.watermark), 0::ubigint) as x_new
        from runs r, held h
    )
    select not (now.n = held.n + now.n_new and now.x = xor(held.x, now.x_new)) from now, held
)
{%- endif -%}
{%- endmacro %}
