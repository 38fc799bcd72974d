"""The embedded default grid and the full grid: which sources, targets, seeds and recipes; run them via Dagster.

A grid has one or more pretrained base models (one per local architecture); each base gets its own intermediate
model per source, and the ranking is per architecture. `run_grid` registers the dynamic partitions, then
materializes `lake/datasets` for the grid's sets (sources, targets and the probe set: every run and probe score
then has its `datasets` row, which the warehouse's relationship tests require), `intermediate_models` per
(base, source) (partition key `source_key(base, source)`), `lake/finetune_runs` per (model, target) and
`lake/probe_scores` per model (a second or two each, so that `proxy_validation` covers the grid) against the
given Dagster instance. After the target runs, `fused_models` fuses the top-2 models of each base (by mean
gain over the base in the lake's runs; `Grid.fusion_recipes`, docs/fusion.md) and the fused model is finetuned
and probed like the others. Finished runs are in the lake, so rerunning after an interruption only computes what is
missing. Each run records its process in run tags;
`run_grid` first frees the pool slots of runs killed earlier and, while a partition waits for a pool slot,
says at INFO which run holds it (`pipelines.recovery`).
"""


import os
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from pipelines.engine.recipe import Recipe
from pipelines.partitions import encode_key, source_key
from pipelines.probes.run import OFFLINE_PROXY
from pipelines.recovery import recovering_executor
from pipelines.zoo import DEFAULT_BASE, intermediate_id

# The second local architecture: 3 layers × 384, rebuilt from its packaged ONNX export (pipelines/zoo/onnx_rebuild.py).
MINILM_L3 = "sentence-transformers/paraphrase-MiniLM-L3-v2"

# Recipe of the target runs: the Recipe defaults (documented in docs/engine.md) ...
TARGET_RECIPE = Recipe()
# ... except for targets that need more data to clearly beat their majority class (measured with MiniLM-L6,
# seed 0: shakespeare_genre 37.7% with 256 examples, 49.0% with 512, majority 36.7%).
TARGET_RECIPE_OVERRIDES: dict[str, Recipe] = {"shakespeare_genre": Recipe(train_cap=512)}
# Intermediate models see more source data than a target run sees target data: 1,200 examples, one epoch. With
# 400 they were no real intermediate models (below their pretrained model on every target); the choice, by source
# validation accuracy against majority share and against 6x the data, is in benchmarks/local_sources.py and
# benchmarks/results/local_sources.json.
SOURCE_RECIPE = Recipe(train_cap=1200)


@dataclass(frozen=True)
class Grid:
    name: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    seeds: tuple[int, ...]
    # Each base model (one per architecture) gets its own intermediate model per source.
    base_models: tuple[str, ...] = (DEFAULT_BASE,)
    source_recipe: Recipe = SOURCE_RECIPE
    skip_same_dataset: bool = field(default=True)  # a model trained on the target itself is no fair candidate
    probe_dataset: str = OFFLINE_PROXY  # online or not: the grid is the offline experiment
    # `fused_models` recipes made per base after its target runs, then finetuned and probed like the others.
    fusion_recipes: tuple[str, ...] = ("top2-avg",)

    def __post_init__(self) -> None:
        if not self.base_models or len(set(self.base_models)) != len(self.base_models):
            raise ValueError(f"grid {self.name!r}: base_models must be distinct and not empty, got {self.base_models}")

    @property
    def intermediates(self) -> list[tuple[str, str, str]]:
        """(base model, source, intermediate model id) for every base and source, base by base."""
        return [(b, s, intermediate_id(s, b)) for b in self.base_models for s in self.sources]

    def models_of(self, base_model: str) -> list[str]:
        """One architecture's candidates: the base model, then its intermediate models."""
        return [base_model, *(m for b, _, m in self.intermediates if b == base_model)]

    @property
    def models(self) -> list[str]:
        return [m for b in self.base_models for m in self.models_of(b)]

    def recipe_for(self, target: str) -> Recipe:
        return target_recipe(target)

    @property
    def datasets(self) -> list[str]:
        """Every dataset the grid trains or probes on, in first-use order."""
        return list(dict.fromkeys((*self.sources, *self.targets, self.probe_dataset)))

    def pairs(self) -> list[tuple[str, str]]:
        out = []
        for base in self.base_models:
            for source, model in zip((None, *self.sources), self.models_of(base), strict=True):
                out.extend((model, t) for t in self.targets if not (self.skip_same_dataset and t == source))
        return out


def target_recipe(target: str) -> Recipe:
    """The recipe a target is finetuned with unless a run's config names another (one place for grid,
    `lake/finetune_runs`, selection jobs and benchmarks)."""
    return TARGET_RECIPE_OVERRIDES.get(target, TARGET_RECIPE)


# Small enough for `make run` (≤ 10 minutes on 2 cores with the published import): PyPI-only sets.
DEFAULT_GRID = Grid(
    name="default",
    # Targets: the sets on which the target recipe clearly beats the majority class (measured: tweets_sentiment
    # 64.7% vs 43%, trump_tweet_device 72.7% vs 54%, shakespeare_genre 49.0% vs 36.7% with 512 examples);
    # fine_foods, drug_review_sentiment and birdstrike_phase only reach their majority share with this budget
    # (66.0/66.0, 65.7/65.3, 35.0/35.0), so they serve as sources.
    sources=("fine_foods", "drug_review_sentiment", "birdstrike_phase"),
    targets=("tweets_sentiment", "trump_tweet_device", "shakespeare_genre"),
    seeds=(0, 1),
    # Two local architectures, so that "one ranking per architecture" is exercised: MiniLM-L6 and MiniLM-L3.
    base_models=(DEFAULT_BASE, MINILM_L3),
)


def full_grid() -> Grid:
    """Every installed offline set as source and as target, 3 seeds (hours on CPU; minutes on a GPU)."""
    from pipelines.data import installed

    available = tuple(installed())
    return Grid(name="full", sources=available, targets=available, seeds=(0, 1, 2), base_models=DEFAULT_GRID.base_models,
                fusion_recipes=("top2-avg", "top3-avg", "top5-avg", "top2-ta0.5"))


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    return any(
        e.event_type_value in ("RUN_FAILURE", "STEP_FAILURE") and "interrupt" in (e.message or "").lower()
        for e in result.all_events
    )


def run_grid(grid: Grid, instance: dg.DagsterInstance | None = None, log: Callable[[str], None] = print) -> dict:
    """Materialize the grid partition by partition; returns counts of succeeded and failed partitions (a failed
    `lake/datasets` step counts as a failed one)."""
    from assets.datasets import datasets_lake
    from assets.finetune import finetune_runs
    from assets.intermediate_models import intermediate_models
    from assets.probes import probe_scores_lake
    from pipelines.resources import HomeResource, LakeResource
    from pipelines.recovery import HOST_TAG, PID_TAG, PoolWatch, free_dead_runs, process_tags
    from pipelines.settings import get_settings

    instance = instance or _instance()
    if not instance.is_ephemeral:
        free_dead_runs(instance, log=log)
    tags = process_tags()
    mine = lambda run: all(run.tags.get(k) == tags[k] for k in (HOST_TAG, PID_TAG))  # noqa: E731
    settings = get_settings()
    resources = {"lake": LakeResource(url=settings.lake_url), "home": HomeResource(path=str(settings.home))}
    instance.add_dynamic_partitions("sources", [source_key(b, s) for b, s, _ in grid.intermediates])
    instance.add_dynamic_partitions("base_models", [encode_key(m) for m in grid.models])
    instance.add_dynamic_partitions("targets", [encode_key(t) for t in grid.targets])
    counts = {"ok": 0, "failed": 0}

    def materialize(asset, key, config: dict) -> dg.ExecuteInProcessResult:
        # Partitions are counted; the unpartitioned `lake/datasets` step only when it fails (the grid then fails).
        what = f"partition {key} of {asset.key.to_user_string()}" if key is not None else asset.key.to_user_string()
        with PoolWatch(instance, mine, log):
            result = dg.materialize(
                [asset], partition_key=key, instance=instance, resources=resources, raise_on_error=False,
                run_config={"ops": {asset.op.name: {"config": config}}}, tags=tags,
            )
        if not result.success and _interrupted(result):
            # Ctrl-C / kill reached the run: stop the whole grid (finished runs stay in the lake, none is partial).
            raise KeyboardInterrupt(f"interrupted during {what}")
        if key is not None or not result.success:
            counts["ok" if result.success else "failed"] += 1
        if not result.success:
            log(f"{what} failed; see the Dagster run {result.run_id}")
        return result

    # The grid's `datasets` rows (a second for the default grid): runs and probe scores point at them.
    from pipelines.data import OFFLINE_SUITE

    suite_sets = [d for d in grid.datasets if d in OFFLINE_SUITE]
    if suite_sets:
        log(f"[{grid.name}] datasets: {', '.join(suite_sets)}")
        materialize(datasets_lake, None, {"dataset_ids": suite_sets})

    for i, (base, source, _) in enumerate(grid.intermediates, 1):
        log(f"[{grid.name}] intermediate model {i}/{len(grid.intermediates)}: {base} on {source}")
        materialize(intermediate_models, source_key(base, source),
                    {"recipe": grid.source_recipe.to_json(), "seed": 0})
    pairs = grid.pairs()
    for i, (model, target) in enumerate(pairs, 1):
        log(f"[{grid.name}] finetune {i}/{len(pairs)}: {model} on {target}, seeds {list(grid.seeds)}")
        key = dg.MultiPartitionKey({"model": encode_key(model), "target": encode_key(target)})
        materialize(finetune_runs, key, {"seeds": list(grid.seeds), "recipe": grid.recipe_for(target).to_json()})
    fused = _fusion_round(grid, instance, materialize, log)
    probed = [*grid.models, *fused]
    for i, model in enumerate(probed, 1):
        log(f"[{grid.name}] probe {i}/{len(probed)}: {model}")
        materialize(probe_scores_lake, encode_key(model), {"proxy_dataset": grid.probe_dataset})
    return counts


def _fusion_round(grid: Grid, instance: dg.DagsterInstance, materialize, log: Callable[[str], None]) -> list[str]:
    """Per base and fusion recipe: fuse the top-k of the base's models ranked by mean gain in the lake's runs
    (`ranking: lake`, so a clean home and a rerun choose alike), then finetune the fused model on the targets.
    Returns the fused model ids. The ranking is read from the lake, not from an upstream asset: this is a second
    round after the target runs, not a cycle (docs/fusion.md)."""
    from assets.finetune import finetune_runs
    from assets.fused_models import fused_models
    from pipelines.zoo.fusion import FusionRecipe

    # A recipe needs k ranked models of the base: a grid without targets, or with fewer models, has no fusion.
    todo = [(b, r) for b in grid.base_models for r in grid.fusion_recipes
            if grid.targets and FusionRecipe.parse(r).k <= len(grid.models_of(b))]
    instance.add_dynamic_partitions("pretrained_bases", sorted({encode_key(b) for b, _ in todo}))
    fused = []
    for base, recipe in todo:
        log(f"[{grid.name}] fuse {recipe} of {base}")
        key = dg.MultiPartitionKey({"base": encode_key(base), "recipe": recipe})
        result = materialize(fused_models, key, {"ranking": "lake"})
        if result.success:
            fused.append(result.asset_materializations_for_node(fused_models.op.name)[0].metadata["model_id"].value)
    instance.add_dynamic_partitions("base_models", [encode_key(m) for m in fused])
    pairs = [(m, t) for m in fused for t in grid.targets]
    for i, (model, target) in enumerate(pairs, 1):
        log(f"[{grid.name}] finetune fused {i}/{len(pairs)}: {model} on {target}, seeds {list(grid.seeds)}")
        key = dg.MultiPartitionKey({"model": encode_key(model), "target": encode_key(target)})
        materialize(finetune_runs, key, {"seeds": list(grid.seeds), "recipe": grid.recipe_for(target).to_json()})
    return fused


class GridConfig(dg.Config):
    grid: str = "default"  # default | full


@dg.op(description="Register the grid's partitions and materialize them one after another.")
def run_grid_op(context: dg.OpExecutionContext, config: GridConfig) -> None:
    if config.grid not in ("default", "full"):
        raise dg.Failure(f"grid must be 'default' or 'full', got {config.grid!r}")
    grid = full_grid() if config.grid == "full" else DEFAULT_GRID
    counts = run_grid(grid, context.instance, log=context.log.info)
    if counts["failed"]:
        raise dg.Failure(f"{counts['failed']} partition(s) of the {grid.name} grid failed; see their runs")


@dg.job(name="default_grid", description="The embedded default grid: MiniLM-L6 and MiniLM-L3, each with 3 intermediate models "
        "(sources) and its pretrained model, finetuned on 3 targets, 2 seeds.",
        config={"ops": {"run_grid_op": {"config": {"grid": "default"}}}}, executor_def=recovering_executor)
def default_grid_job():
    run_grid_op()


@dg.job(name="full_grid", description="All installed offline sets as sources and targets, 3 seeds.",
        config={"ops": {"run_grid_op": {"config": {"grid": "full"}}}}, executor_def=recovering_executor)
def full_grid_job():
    run_grid_op()
