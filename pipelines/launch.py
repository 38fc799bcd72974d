"""Launching a grid or a selection the Dagster way: named asset jobs, partitions, run requests, one tag per grid.

The steps come from `startpoint.plan` (what to make, with which config, after what). Here they become
Dagster runs of four named asset jobs, one per partitioned step, whose executor is chosen by configuration
(`STARTPOINT_EXECUTOR`, `pipelines/executors.py`):

| step | job | asset | partition |
|---|---|---|---|
| datasets | `lake_datasets` | `lake/datasets` | none |
| intermediate | `grid_intermediate_models` | `lake/intermediate_models` | `sources`: `source_key(base, source)` |
| finetune | `grid_finetune_runs` | `lake/finetune_runs` | `model` x `target` |
| probe | `grid_probe_scores` | `lake/probe_scores` | `base_models` |
| fuse | `grid_fused_models` | `lake/fused_models` | `base` (`pretrained_bases`) x `recipe` |

Every run carries the tag `startpoint/grid=<name>` (the grid's name: `default`, `full`; or
`select_<architecture>`), so the UI's run list filtered by that tag shows one grid's runs, and its partitions
are registered before any run starts.

Two ways to launch, asking the planner the same questions:

* **sensors** `default_grid`, `full_grid` and `select_<architecture>` (stopped by default: each launches
  finetuning, CPU or GPU hours, so a person turns it on; one per architecture of the Hub catalog, none for
  t5-base: `NOT_SELECTABLE` says why): each tick registers
  the grid's partitions and requests the runs of the next stage that the lake does not hold yet, with run keys
  (`<grid>:<step id>:<config digest>`), so no request is made twice. Turning a sensor on (or "Test sensor",
  or `dagster sensor start`) launches the grid through the instance's run coordinator and the configured
  executor; the next stage (a finetune of an intermediate model, the top-k finetunes of a selection) is
  requested on a later tick, once the lake holds what it needs. A failed run is not requested again by the
  sensor; re-execute it from the UI.
* **`run_grid` / `run_selection`** (`startpoint run-grid`, `make run`): the same steps, stage by stage, run one
  after another in this process through the same named jobs (`execute_in_process`), with the project's kill -9
  recovery (`pipelines.recovery`): process tags on each run, dead runs freed at start, and INFO lines while a
  step waits for a pool slot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import dagster as dg

from assets.datasets import datasets_lake
from assets.finetune import finetune_runs
from assets.fused_models import fused_models, pretrained_bases_partitions
from assets.intermediate_models import intermediate_models
from assets.partitions import (
    base_models_partitions,
    sources_partitions,
    targets_partitions,
)
from assets.probes import probe_scores_lake
from assets.resources import HomeResource, LakeResource
from pipelines.executors import configured_executor
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.keys import decode_key, encode_key, source_key
from startpoint.plan import (
    DATASETS,
    FINETUNE,
    FUSE,
    INTERMEDIATE,
    KINDS,
    PROBE,
    SelectionOptions,
    Step,
    finetune_count,
    grid_steps,
    made_fusions,
    ready_steps,
    selection_stage,
    steps_done,
    within_budget,
)

GRID_TAG = "startpoint/grid"
RUN_KEY_TAG = "dagster/run_key"  # what the sensor daemon tags a requested run with
REASON_TAG = "startpoint/reason"  # why a selection asked for the run (baseline, or its probe rank)
Log = Callable[[str], None]
# Progress lines go to logging unless a caller (the CLI) passes its own `log`; they are no library's stdout.
_info = logging.getLogger(__name__).info

JOB_NAMES = {DATASETS: "lake_datasets", INTERMEDIATE: "grid_intermediate_models", FINETUNE: "grid_finetune_runs",
             PROBE: "grid_probe_scores", FUSE: "grid_fused_models"}
_ASSETS = {DATASETS: datasets_lake, INTERMEDIATE: intermediate_models, FINETUNE: finetune_runs,
           PROBE: probe_scores_lake, FUSE: fused_models}
_DESCRIPTIONS = {
    DATASETS: "Describe datasets in the lake table `datasets` (the grid's suite sets; config `dataset_ids`).",
    INTERMEDIATE: "Make one intermediate model: a base encoder finetuned on a source (partition base@source).",
    FINETUNE: "Finetune one model on one target, several seeds (partition model x target).",
    PROBE: "Probe one model's frozen features on the proxy set: linear probe and LogME (partition model).",
    FUSE: "Fuse the top-k models of one base by the lake's runs (partition base x recipe); docs/fusion.md.",
}

_EXECUTOR = configured_executor()
GRID_JOBS = [
    dg.define_asset_job(JOB_NAMES[kind], selection=dg.AssetSelection.assets(_ASSETS[kind]),
                        description=_DESCRIPTIONS[kind], executor_def=_EXECUTOR)
    for kind in KINDS
]


def default_instance() -> dg.DagsterInstance:
    """The instance of $DAGSTER_HOME, else an ephemeral one (nothing kept)."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def partition_key(step: Step) -> str | None:
    if step.kind == INTERMEDIATE:
        return source_key(step.base, step.source)
    if step.kind == FINETUNE:
        return dg.MultiPartitionKey({"model": encode_key(step.model), "target": encode_key(step.target)})
    if step.kind == PROBE:
        return encode_key(step.model)
    if step.kind == FUSE:
        return dg.MultiPartitionKey({"base": encode_key(step.base), "recipe": step.fusion})
    return None


def _partition_keys(steps: Iterable[Step]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {sources_partitions.name: [], base_models_partitions.name: [],
                                  targets_partitions.name: [], pretrained_bases_partitions.name: []}
    for s in steps:
        if s.kind == INTERMEDIATE:
            keys[sources_partitions.name].append(source_key(s.base, s.source))
        elif s.kind in (FINETUNE, PROBE):
            keys[base_models_partitions.name].append(encode_key(s.model))
            if s.kind == FINETUNE:
                keys[targets_partitions.name].append(encode_key(s.target))
        elif s.kind == FUSE:
            keys[pretrained_bases_partitions.name].append(encode_key(s.base))
    return {name: list(dict.fromkeys(k)) for name, k in keys.items()}


def missing_partitions(instance: dg.DagsterInstance, steps: Iterable[Step]) -> dict[str, list[str]]:
    """The dynamic partition keys `steps` need that the instance does not have yet, per partitions name."""
    out = {}
    for name, keys in _partition_keys(steps).items():
        known = set(instance.get_dynamic_partitions(name))
        if missing := [k for k in keys if k not in known]:
            out[name] = missing
    return out


def run_config(step: Step) -> dict:
    return {"ops": {_ASSETS[step.kind].op.name: {"config": dict(step.config)}}}


def run_key(name: str, step: Step) -> str:
    return f"{name}:{step.id}:{step.config_digest}"


def run_request(name: str, step: Step) -> dg.RunRequest:
    tags = {GRID_TAG: name, **({REASON_TAG: step.reason} if step.reason else {})}
    return dg.RunRequest(run_key=run_key(name, step), job_name=JOB_NAMES[step.kind], partition_key=partition_key(step),
                         run_config=run_config(step), tags=tags)


def _sensor_result(context, name: str, all_steps: list[Step], batch: list[Step], idle: str) -> dg.SensorResult:
    partitions = [dg.AddDynamicPartitionsRequest(partitions_def_name=n, partition_keys=keys)
                  for n, keys in missing_partitions(context.instance, all_steps).items()]
    if not batch:
        return dg.SensorResult(skip_reason=idle, dynamic_partitions_requests=partitions)
    context.log.info(f"{name}: requesting {len(batch)} run(s): " + "; ".join(s.label for s in batch[:20])
                     + (" ..." if len(batch) > 20 else ""))
    return dg.SensorResult(run_requests=[run_request(name, s) for s in batch],
                           dynamic_partitions_requests=partitions)


# --- grid sensors ------------------------------------------------------------------------------------------------

def grid_sensor(name: str, make_grid: Callable[[], object], description: str) -> dg.SensorDefinition:
    @dg.sensor(name=name, jobs=GRID_JOBS, default_status=dg.DefaultSensorStatus.STOPPED,
               minimum_interval_seconds=30, description=description)
    def _grid_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, home: HomeResource):
        grid = make_grid()  # runs are tagged and keyed with the grid's name, as `run_grid` tags its runs
        steps = grid_steps(grid, made_fusions(grid, lake.url, home.models_dir))
        done = steps_done(steps, lake.url, home.models_dir)
        batch = ready_steps(steps, done)
        left = len(steps) - len(done)
        idle = (f"the {grid.name} grid is complete ({len(steps)} steps in the lake)" if not left else
                f"{left} step(s) of the {grid.name} grid wait for the runs they need")
        return _sensor_result(context, grid.name, steps, batch, idle)

    return _grid_sensor


def _default_grid():
    from startpoint.grid import DEFAULT_GRID

    return DEFAULT_GRID


def _full_grid():
    from startpoint.grid import full_grid

    return full_grid()


default_grid_sensor = grid_sensor(
    "default_grid", _default_grid,
    "The embedded default grid: its datasets, intermediate models, finetune and probe partitions, stage by stage "
    "(what `startpoint run-grid` runs). Runs are tagged startpoint/grid=default.")
full_grid_sensor = grid_sensor(
    "full_grid", _full_grid,
    "Every installed offline set as source and as target, 3 seeds, stage by stage (`startpoint run-grid --full`). "
    "Runs are tagged startpoint/grid=full.")


# --- selection sensors ---------------------------------------------------------------------------------------------

def selection_name(architecture: str) -> str:
    return "select_" + "".join(c if c.isalnum() else "_" for c in architecture)


def failed_probes(instance: dg.DagsterInstance, name: str) -> set[str]:
    """Models whose probe run in selection `name` failed (the ranking goes ahead without them)."""
    records = instance.get_run_records(dg.RunsFilter(job_name=JOB_NAMES[PROBE], tags={GRID_TAG: name},
                                                  statuses=[dg.DagsterRunStatus.FAILURE]))
    return {decode_key(r.dagster_run.tags["dagster/partition"]) for r in records
            if "dagster/partition" in r.dagster_run.tags}


def requested_finetunes(instance: dg.DagsterInstance, name: str, period_hours: float) -> tuple[set[str], int]:
    """The run keys of the finetunes selection `name` asked for (the daemon tags each run with its key and never
    launches a key twice) and how many finetunes (seeds) its finetune runs of the last `period_hours` hold: every
    run tagged with the selection counts, retries and `run_selection`'s runs included."""
    import datetime as dt

    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=period_hours)
    op = _ASSETS[FINETUNE].op.name
    keys, spent = set(), 0
    for record in instance.get_run_records(dg.RunsFilter(job_name=JOB_NAMES[FINETUNE], tags={GRID_TAG: name})):
        run = record.dagster_run
        if key := run.tags.get(RUN_KEY_TAG):
            keys.add(key)
        created = record.create_timestamp
        if (created if created.tzinfo else created.replace(tzinfo=dt.timezone.utc)) >= since:
            spent += finetune_count((run.run_config or {}).get("ops", {}).get(op, {}).get("config") or {})
    return keys, spent


def _budgeted(context, name: str, options: SelectionOptions, batch: list[Step]) -> tuple[list[Step], str]:
    """`batch` cut to what is left of the period's budget (all of it when there is no budget), and why."""
    if not options.budget:
        return batch, ""
    requested, spent = requested_finetunes(context.instance, name, options.period_hours)
    new = [s for s in batch if run_key(name, s) not in requested]
    if not new:
        return [], (f"{name}: every finetune partition not in the lake was asked for already ({len(batch)}: "
                    "running, or failed: re-execute a failed run from the UI)") if batch else ""
    kept = within_budget(new, options.budget - spent)
    if len(kept) == len(new):
        return kept, ""
    return kept, (f"{name}: {spent} of {options.budget} finetune(s) asked for in the last {options.period_hours:g} h; "
                  f"{len(new) - len(kept)} finetune partition(s) wait until earlier runs leave that window")


def selection_sensor(architecture: str) -> dg.SensorDefinition:
    name = selection_name(architecture)

    @dg.sensor(name=name, jobs=[GRID_JOBS[KINDS.index(PROBE)], GRID_JOBS[KINDS.index(FINETUNE)]],
               default_status=dg.DefaultSensorStatus.STOPPED, minimum_interval_seconds=60,
               description=f"Probe every {architecture} candidate (offline zoo and accepted Hub models); once all "
               "are probed, finetune the pretrained baseline and the top k by probe on the targets. Options from "
               "STARTPOINT_SELECT_* (docs/hub_and_probes.md).")
    def _selection_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, home: HomeResource):
        try:
            options = SelectionOptions.from_env()
        except ValueError as exc:
            return dg.SkipReason(str(exc))
        stage = selection_stage(architecture, options, lake.url, home.models_dir,
                                probe_failed=failed_probes(context.instance, name))
        context.log.info(stage.note)
        done = steps_done(stage.steps, lake.url, home.models_dir)
        batch = [s for s in stage.steps if s.id not in done]
        idle = f"{name}: {stage.note}; every requested run is in the lake" if stage.phase == FINETUNE else stage.note
        if stage.phase == FINETUNE:
            batch, waiting = _budgeted(context, name, options, batch)
            if waiting:
                context.log.info(waiting)
                idle = waiting
        return _sensor_result(context, name, stage.steps, batch, idle)

    return _selection_sensor


# Ranked architectures (from the published results) that get no `select_<architecture>` sensor, and why.
NOT_SELECTABLE = {
    "t5-base": "an encoder-decoder: the engine and the probe run an encoder alone (AutoModel + a pooled head), and "
               "t5-base's AutoModel needs decoder inputs, so no candidate could be probed or finetuned here; its "
               "ranking comes from the published results only",
}

SELECTION_SENSORS = [selection_sensor(a) for a in sorted(ARCHITECTURES)]
GRID_SENSORS = [default_grid_sensor, full_grid_sensor, *SELECTION_SENSORS]


# --- the single-machine path: the same steps, in this process, through the named jobs ---------------------------

def grid_definitions() -> dg.Definitions:
    """The grid's assets and jobs with the lake and home of the current settings (what `execute_in_process` of a
    named job needs, without loading the whole code location)."""
    return dg.Definitions(assets=list(_ASSETS.values()), jobs=GRID_JOBS, resources=_local_resources())


def _local_resources(lake_url: str | None = None) -> dict:
    """The lake (`lake_url`, else the settings') and home resources of the current settings."""
    from startpoint.settings import get_settings

    settings = get_settings()
    return {"lake": LakeResource(url=lake_url or settings.lake_url), "home": HomeResource(path=str(settings.home))}


def _execute(job: dg.JobDefinition, run_config: dict, key, instance: dg.DagsterInstance,
             tags: dict) -> dg.ExecuteInProcessResult:
    """The one place a run executes in this process (the single-machine path): a named job, one partition."""
    return job.execute_in_process(run_config=run_config, partition_key=key, instance=instance, tags=tags,
                                  raise_on_error=False)


def execute_job(job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict) -> dg.ExecuteInProcessResult:
    """An unpartitioned named job in this process (`startpoint publish` runs `published` this way)."""
    return _execute(job, {}, None, instance, tags)


_WORKER_LOADED: dict = {}  # in a grid worker process: its instance and the grid's definitions, loaded once


def run_step_in_worker(step: Step, instance_ref, tags: dict[str, str]):
    """One step in a grid worker process (`pipelines.workers`): the same named job and run config as in this
    process, tagged with the worker's own pid; an error before the run starts is a failed step, one line."""
    import time

    from pipelines.recovery import process_tags
    from pipelines.workers import Outcome, error_line

    started = time.monotonic()
    try:
        if "defs" not in _WORKER_LOADED:
            _WORKER_LOADED["instance"] = dg.DagsterInstance.from_ref(instance_ref)
            _WORKER_LOADED["defs"] = grid_definitions()
        job = _WORKER_LOADED["defs"].resolve_job_def(JOB_NAMES[step.kind])
        result = _execute(job, run_config(step), partition_key(step), _WORKER_LOADED["instance"],
                          {**tags, **process_tags()})
        return Outcome(step.id, result.success, _interrupted(result), result.run_id, time.monotonic() - started)
    except Exception as exc:
        return Outcome(step.id, False, seconds=time.monotonic() - started, error=error_line(exc))


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a Ctrl-C / SIGTERM reached the run (its step fails with DagsterExecutionInterruptedError)."""
    for e in result.all_events:
        if e.event_type_value not in ("RUN_FAILURE", "STEP_FAILURE"):
            continue
        error = e.step_failure_data.error if e.event_type_value == "STEP_FAILURE" else None
        text = f"{e.message or ''} {error.cls_name if error else ''} {error.message if error else ''}".lower()
        if "interrupt" in text:
            return True
    return False


def execute_stages(name: str, next_stage: Callable[[set[str], set[str]], list[Step]], instance: dg.DagsterInstance,
                   log: Log = _info, known_steps: Callable[[], list[Step]] | None = None, progress=None) -> dict:
    """Run `next_stage(succeeded, tried)` stage after stage, each step as one run of its named job, until it asks
    for nothing new. A stage's independent finetunes run in parallel worker processes (`pipelines.workers`, sized
    by `grid_workers`; with an ephemeral instance or one worker, in this process one after another), the other
    steps in this process. Returns counts of succeeded and failed partitions (the unpartitioned datasets step is
    counted only when it fails); a step of `known_steps` never tried (what it needs failed) is a failure.
    `progress` (a `startpoint.progress.RunProgress`) hears of each step's start and end."""
    from pipelines.recovery import (
        HOST_TAG,
        PID_TAG,
        PoolWatch,
        free_dead_runs,
        process_tags,
    )
    from pipelines.workers import PARALLEL_KINDS, TRAINING_KINDS, Outcome, WorkerPool
    from startpoint.engine.device import grid_workers

    if not instance.is_ephemeral:
        free_dead_runs(instance, log=log)
    tags = {**process_tags(), GRID_TAG: name}
    mine = lambda run: all(run.tags.get(k) == tags[k] for k in (HOST_TAG, PID_TAG))  # noqa: E731
    defs = grid_definitions()
    workers, threads = grid_workers() if not instance.is_ephemeral else (1, 0)
    pool: WorkerPool | None = None
    succeeded: set[str] = set()
    tried: set[str] = set()
    counts = {"ok": 0, "failed": 0}

    def ended(step: Step, outcome: Outcome, parallel: bool) -> None:
        tried.add(step.id)
        if progress is not None:
            if parallel:
                progress.finish(outcome.success, name=step.label, seconds=outcome.seconds)
            else:
                progress.finish(outcome.success)
        if outcome.interrupted:
            # Ctrl-C / kill reached the run: stop here (finished runs stay in the lake, none is partial).
            raise KeyboardInterrupt(f"interrupted during {step.label}")
        if outcome.success:
            succeeded.add(step.id)
        else:
            log(f"[{name}] {step.label} failed; " + (f"see the Dagster run {outcome.run_id}" if outcome.run_id
                                                      else outcome.error))
        if step.kind != DATASETS or not outcome.success:
            counts["ok" if outcome.success else "failed"] += 1

    if known_steps is not None:  # every partition of the grid shows in the UI from the start
        for partitions_name, keys in missing_partitions(instance, known_steps()).items():
            instance.add_dynamic_partitions(partitions_name, keys)
    try:
        while batch := [s for s in next_stage(succeeded, tried) if s.id not in tried]:
            for partitions_name, keys in missing_partitions(instance, batch).items():
                instance.add_dynamic_partitions(partitions_name, keys)
            if progress is not None:  # later stages can add steps (a fused model's runs)
                progress.total = max(progress.total, len(tried) + len(batch))
            parallel = [s for s in batch if s.kind in PARALLEL_KINDS] if workers > 1 else []
            training = any(s.kind in TRAINING_KINDS for s in parallel)
            parallel = parallel if len(parallel) > 1 and training else []
            for step in [s for s in batch if not any(s is p for p in parallel)]:
                log(f"[{name}] {step.label}")
                if progress is not None:
                    progress.start(step.label)
                job = defs.resolve_job_def(JOB_NAMES[step.kind])
                with PoolWatch(instance, mine, log):
                    result = _execute(job, run_config(step), partition_key(step), instance, tags)
                ended(step, Outcome(step.id, result.success, _interrupted(result), result.run_id), parallel=False)
            if parallel:
                if pool is None:
                    pool = WorkerPool(workers, threads)
                    log(f"[{name}] {workers} worker processes of {threads} thread(s) each for the finetunes and probes")
                    if progress is not None:
                        progress.workers = workers
                for step in parallel:
                    log(f"[{name}] {step.label}")
                pool.run(parallel, run_step_in_worker, instance, tags,
                         lambda step, outcome: ended(step, outcome, parallel=True))
    except BaseException:
        if pool is not None:  # Ctrl-C, SIGTERM, an error: stop the workers and free what their runs held
            pool.stop()
            pool = None
            if not instance.is_ephemeral:
                free_dead_runs(instance, log=log)
        raise
    finally:
        if pool is not None:
            pool.close()
    for step in (known_steps() if known_steps is not None else []):
        if step.id not in tried:
            missing = [a for a in step.after if a not in succeeded]
            log(f"[{name}] {step.label} not run: it needs {', '.join(missing)}, which failed")
            counts["failed"] += 1
    return counts


def run_grid(grid, instance: dg.DagsterInstance | None = None, log: Log = _info, progress=None) -> dict:
    """Materialize `grid` stage by stage in this process (the single-machine path of `startpoint run-grid`);
    returns counts of succeeded and failed partitions (a failed `lake/datasets` step counts as a failed one)."""
    from startpoint.settings import get_settings

    settings = get_settings()

    def steps() -> list[Step]:  # the fused models' steps appear once their fusion is made
        return grid_steps(grid, made_fusions(grid, settings.lake_url, settings.models_dir))

    return execute_stages(grid.name, lambda succeeded, tried: ready_steps(steps(), succeeded, skip=tried),
                          instance or default_instance(), log=log, known_steps=steps, progress=progress)


def run_selection(architecture: str, options: SelectionOptions | None = None,
                  instance: dg.DagsterInstance | None = None, log: Log = _info) -> dict:
    """The `select_<architecture>` sensor's stages in this process: probe every candidate, then finetune the
    baseline and the top k. Returns the counts of `execute_stages`."""
    from startpoint.settings import get_settings

    options = options or SelectionOptions.from_env()
    settings = get_settings()
    failed: set[str] = set()

    def next_stage(succeeded: set[str], tried: set[str]) -> list[Step]:
        failed.update(s.split(":", 1)[1] for s in tried - succeeded if s.startswith(f"{PROBE}:"))
        stage = selection_stage(architecture, options, settings.lake_url, settings.models_dir, probe_failed=failed)
        log(f"[{selection_name(architecture)}] {stage.note}")
        return stage.steps

    return execute_stages(selection_name(architecture), next_stage, instance or default_instance(), log=log)


def record_hub_catalog(name: str, instance: dg.DagsterInstance | None = None, log: Log = _info,
                       architectures: Iterable[str] | None = None, contact_hub: bool = True,
                       lake_url: str | None = None) -> dict:
    """Materialize `lake/hub_models` for every architecture (or `architectures`) through the `hub_catalog` job, with
    `offline: keep`: the live Hub when it can be reached (and `contact_hub`), else the catalog as it stands (the
    embedded default is offline, and then every asset upstream of `published` is still materialized). Returns
    ok/failed counts."""
    from assets.hub_catalog import hub_models_lake
    from pipelines.hub_automation import hub_catalog_job
    defs = dg.Definitions(assets=[hub_models_lake], jobs=[hub_catalog_job], resources=_local_resources(lake_url))
    job = defs.resolve_job_def(hub_catalog_job.name)
    instance = instance or default_instance()
    counts = {"ok": 0, "failed": 0}
    config = {"offline": "keep", "contact_hub": contact_hub}
    for arch in sorted(ARCHITECTURES if architectures is None else architectures):
        result = _execute(job, {"ops": {hub_models_lake.op.name: {"config": config}}}, arch, instance, {GRID_TAG: name})
        counts["ok" if result.success else "failed"] += 1
        if not result.success:
            log(f"[{name}] Hub catalog of {arch} failed; see the Dagster run {result.run_id}")
    log(f"[{name}] Hub catalog recorded for {counts['ok']} architecture(s)")
    return counts
