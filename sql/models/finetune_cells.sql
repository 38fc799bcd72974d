-- One row per (architecture, model, target) of the runs `gains` reads (status ok, a score, not a user's own target):
-- how many runs, their mean score, the highest rowid among them and a checksum of the runs. The only model that reads
-- every run, so it is incremental: after a load that appended runs it re-aggregates only the cells those runs
-- belong to (every run of such a cell, not only the new ones), and `gains` and everything after it read these
-- cells instead of the runs.
--
-- New runs are the rows of `finetune_runs` past the highest rowid the table holds: the load appends new runs after
-- the loaded ones (startpoint/warehouse/load.py), and a DuckDB rowid is only ever given to a new row. The
-- incremental path is exact only when the load did nothing but append, so the pre-hook checks that first: the sum of
-- hash(cell, score) over every eligible run must equal the sum the table holds plus the new rows', and the run count
-- the table's count plus the new rows' (the table is made of nothing but each cell's count and scores). Anything else (a run replaced, removed, rescored or
-- ineligible now, a table rebuilt in another row order) empties the table, and this build re-aggregates every
-- cell, as `--full-refresh` does; a table rebuilt with the same runs passes the check and changes no cell. tests/test_warehouse_incremental_sql.py compares both paths with a full rebuild.
{{ config(
    materialized='incremental',
    unique_key=['architecture', 'model_id', 'dataset_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="{{ finetune_cells_guard() }}"
) }}
with runs as (
    select architecture, model_id, dataset_id, score, rowid as row_number,
           {{ finetune_run_hash() }} as run_hash
    from {{ source('warehouse', 'finetune_runs') }}
    where status = 'ok' and score is not null and origin <> 'user'
)
{%- if is_incremental() %},
state as (select count(*) as n_cells, max(last_row) as watermark from {{ this }}),
changed as (
    select distinct r.architecture, r.model_id, r.dataset_id
    from runs r, state s
    where s.n_cells = 0 or r.row_number > s.watermark
)
{%- endif %}
select architecture, model_id, dataset_id,
       count(*) as n_runs, avg(score) as score_mean, max(row_number) as last_row,
       sum(run_hash) as checksum
from runs
{%- if is_incremental() %}
semi join changed using (architecture, model_id, dataset_id)
{%- endif %}
group by all
