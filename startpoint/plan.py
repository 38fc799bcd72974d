"""What a grid or a selection asks for, as steps: plain data that says what to make, with which config, after what.

Nothing here runs or imports Dagster. `pipelines/launch.py` turns steps into Dagster runs, either as a sensor's
run requests (the UI path: runs through the instance's run coordinator and the configured executor) or one
after another in this process (`startpoint run-grid`). Both ask the same functions what comes next:

* `grid_steps(grid, fused)`: every step of a grid in stage order: `lake/datasets` for the grid's suite sets, one
  `intermediate_models` partition per (base, source), then one `lake/finetune_runs` partition per (model, target)
  and one `lake/probe_scores` partition per model; a step on an intermediate model comes after that model's step.
  Then, per base and fusion recipe, one `fused_models` partition after every target run of that base's models,
  and, once the fused model is made (`fused`, from `made_fusions`), its finetune and probe steps: the fused
  model's id depends on the members the runs rank first, so it is known only after that stage;
* `steps_done(steps, lake_url, models_dir)`: which of them the lake and the models folder already hold (a
  model saved with the step's recipe, every seed's run file, the probe file), so a sensor never repeats them;
* `ready_steps(steps, done)`: the next stage: steps not done whose prerequisites are;
* `selection_steps(...)`: a selection's stage: probe every candidate of an architecture first; once each has
  a score (or its probe failed), finetune the pretrained baseline and the top k by probe on the targets.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from startpoint.grid import Grid
    from startpoint.probes.candidates import Candidate

DATASETS, INTERMEDIATE, FINETUNE, PROBE, FUSE = "datasets", "intermediate", "finetune", "probe", "fuse"
KINDS = (DATASETS, INTERMEDIATE, FINETUNE, PROBE, FUSE)


@dataclass(frozen=True, eq=False)
class Step:
    """One unit of work: a partition of one asset with its op config.

    `model` is the model the step makes (intermediate) or uses (finetune, probe); `base` and `source` name an
    intermediate model's parents, `base` and `fusion` (a recipe key, e.g. `top2-avg`) a fused model's; `after`
    holds the ids of the steps that must be done first; `reason` says why a selection asked for it (a run tag; not
    part of the step's identity or config)."""

    kind: str
    model: str = ""
    base: str = ""
    source: str = ""
    target: str = ""
    fusion: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"step kind {self.kind!r} is not one of {KINDS}")

    @property
    def id(self) -> str:
        """Stable identity, e.g. `finetune:local/all-MiniLM-L6-v2-fine_foods:tweets_sentiment`."""
        if self.kind == DATASETS:
            return DATASETS
        if self.kind == INTERMEDIATE:
            return f"{INTERMEDIATE}:{self.base}:{self.source}"
        if self.kind == FINETUNE:
            return f"{FINETUNE}:{self.model}:{self.target}"
        if self.kind == FUSE:
            return f"{FUSE}:{self.base}:{self.fusion}"
        return f"{PROBE}:{self.model}"

    @property
    def config_digest(self) -> str:
        """10 hex digits of the config: a changed config (seeds, recipe) is a new request."""
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        if self.kind == DATASETS:
            return f"datasets: {', '.join(self.config.get('dataset_ids', []))}"
        if self.kind == INTERMEDIATE:
            return f"intermediate model: {self.base} on {self.source}"
        if self.kind == FINETUNE:
            seeds = self.config.get("seeds")
            return f"finetune: {self.model} on {self.target}" + (f", seeds {list(seeds)}" if seeds is not None else "")
        if self.kind == FUSE:
            return f"fuse: {self.fusion} of {self.base}"
        return f"probe: {self.model}"


def grid_steps(grid: Grid, fused: Mapping[tuple[str, str], str] | None = None) -> list[Step]:
    """Every step of `grid`, in stage order (module docstring); `fused` maps (base, fusion recipe) to the id of
    the fused model made for it (`made_fusions`)."""
    from startpoint.data import OFFLINE_SUITE

    steps: list[Step] = []
    suite_sets = [d for d in grid.datasets if d in OFFLINE_SUITE]
    if suite_sets:
        steps.append(Step(DATASETS, config={"dataset_ids": suite_sets}))
    made_by: dict[str, str] = {}
    for base, source, model in grid.intermediates:
        step = Step(INTERMEDIATE, model=model, base=base, source=source,
                    config={"recipe": grid.source_recipe.to_json(), "seed": 0})
        made_by[model] = step.id
        steps.append(step)
    for model, target in grid.pairs():
        steps.append(Step(FINETUNE, model=model, target=target, after=tuple(filter(None, [made_by.get(model)])),
                          config={"seeds": list(grid.seeds), "recipe": grid.recipe_for(target).to_json()}))
    for model in grid.models:
        steps.append(Step(PROBE, model=model, after=tuple(filter(None, [made_by.get(model)])),
                          config={"proxy_dataset": grid.probe_dataset}))
    finetunes = [s for s in steps if s.kind == FINETUNE]
    for base in grid.base_models:
        own = set(grid.models_of(base))
        for recipe in grid.fusion_recipes:
            if len(own) < _fusion_k(recipe) or not grid.targets:
                continue  # fewer models than members, or no runs to rank them by: it can never be made
            fuse = Step(FUSE, base=base, fusion=recipe, config={"ranking": "lake"},
                        after=tuple(s.id for s in finetunes if s.model in own))
            steps.append(fuse)
            model = (fused or {}).get((base, recipe))
            if model is None:
                continue
            steps.extend(Step(FINETUNE, model=model, target=t, after=(fuse.id,),
                              config={"seeds": list(grid.seeds), "recipe": grid.recipe_for(t).to_json()})
                         for t in grid.targets)
            steps.append(Step(PROBE, model=model, after=(fuse.id,), config={"proxy_dataset": grid.probe_dataset}))
    return steps


def _fusion_k(recipe_key: str) -> int:
    from startpoint.zoo.fusion import FusionRecipe

    return FusionRecipe.parse(recipe_key).k


def _fusion_plan(base: str, recipe_key: str, ranking: str, lake_url: str, models_dir: Path):
    """The fusion the lake's runs ask for now (`startpoint.zoo.fusion.plan_fusion`), or None when they rank too
    few of the base's models yet."""
    from startpoint.zoo import PRETRAINED
    from startpoint.zoo.fusion import FusionError, FusionRecipe, plan_fusion

    try:
        return plan_fusion(base, PRETRAINED[base].architecture, FusionRecipe.parse(recipe_key), lake_url=lake_url,
                           models_dir=models_dir, warehouse_path=None, ranking=ranking)
    except FusionError:
        return None


def made_fusions(grid: Grid, lake_url: str, models_dir: Path) -> dict[tuple[str, str], str]:
    """(base, fusion recipe) -> fused model id, for each fusion of `grid` that the lake's runs ask for and that
    is saved in the models folder."""
    out = {}
    for base in grid.base_models:
        for recipe in grid.fusion_recipes:
            plan = _fusion_plan(base, recipe, "lake", lake_url, models_dir)
            if plan is not None and plan.made(models_dir):
                out[(base, recipe)] = plan.model_id
    return out


def ready_steps(steps: Iterable[Step], done: set[str], skip: set[str] = frozenset()) -> list[Step]:
    """The steps not done (nor in `skip`) whose prerequisites are all done, in their order."""
    return [s for s in steps if s.id not in done and s.id not in skip and all(a in done for a in s.after)]


def _recipe_of(step: Step):
    from startpoint.engine.recipe import Recipe
    from startpoint.grid import SOURCE_RECIPE, target_recipe

    if step.config.get("recipe"):
        return Recipe.from_json(step.config["recipe"])
    return SOURCE_RECIPE if step.kind == INTERMEDIATE else target_recipe(step.target)


def step_done(step: Step, lake_url: str, models_dir: Path) -> bool:
    """Whether the lake (and the models folder) already hold what `step` makes."""
    from startpoint import lake as lake_files

    if step.kind == DATASETS:
        from startpoint.schema import datasets_path

        return all(lake_files.exists(lake_url, "datasets", datasets_path("local", d))
                   for d in step.config.get("dataset_ids", []))
    if step.kind == INTERMEDIATE:
        from startpoint.zoo import ModelDirError, local_model_dir, read_model_card

        folder = local_model_dir(step.model, models_dir)
        try:
            card = read_model_card(folder)
        except ModelDirError:
            return False
        return (folder / "model.safetensors").is_file() and card.get("recipe_hash") == _recipe_of(step).recipe_hash
    if step.kind == FUSE:
        plan = _fusion_plan(step.base, step.fusion, step.config.get("ranking", "lake"), lake_url, models_dir)
        return plan is not None and plan.made(models_dir)
    if step.kind == FINETUNE:
        from startpoint.engine.records import run_relpath

        recipe = _recipe_of(step)
        return all(lake_files.exists(lake_url, "finetune_runs", run_relpath(step.model, step.target, recipe, seed))
                   for seed in step.config.get("seeds", [0, 1]))
    from startpoint.probes.candidates import probe_relpath
    from startpoint.probes.run import default_proxy

    proxy = step.config.get("proxy_dataset") or default_proxy()
    return lake_files.exists(lake_url, "probe_scores", probe_relpath(step.model, proxy))


def steps_done(steps: Iterable[Step], lake_url: str, models_dir: Path) -> set[str]:
    return {s.id for s in steps if step_done(s, lake_url, models_dir)}


# --- selection: probe every candidate of an architecture, then finetune the top k -------------------------------

def _env_ints(environ: Mapping[str, str], name: str, default: Sequence[int]) -> tuple[int, ...]:
    text = environ.get(name, "").strip()
    if not text:
        return tuple(default)
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a comma-separated list of integers (e.g. 0,1,2)") from None


MAX_PERIOD_HOURS = 8760  # a year: a selection budget's longest period


@dataclass(frozen=True)
class SelectionOptions:
    """How a `select_<architecture>` sensor selects; each field from `STARTPOINT_SELECT_<FIELD>` when set
    (docs/hub_and_probes.md)."""

    k: int = 3  # how many best-probed candidates get the full evaluation
    # LogME by default: at the probe's cheap budget it keeps the ranking of a 16x larger probe, the linear
    # head's 3-fold accuracy does not (docs/hub_and_probes.md, benchmarks/probe_fidelity.py).
    method: str = "logme"  # logme | linear_probe
    proxy_dataset: str = ""  # empty: the probe default (MNLI online, an offline set offline)
    targets: tuple[str, ...] = ()  # empty: the default grid's targets
    seeds: tuple[int, ...] = (0, 1)
    baseline_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    probe_train_cap: int = 256
    # At most this many finetunes (one seed each) requested by the sensor per period of `period_hours`; 0: no cap.
    budget: int = 0
    period_hours: float = 24.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1 candidate, got {self.k}")
        largest = max(len(self.seeds), len(self.baseline_seeds))
        if self.budget < 0 or 0 < self.budget < largest:
            raise ValueError(f"budget must be 0 (no cap) or at least {largest} finetunes, the seeds of one partition "
                             f"(a partition's seeds run together), got {self.budget}")
        if not 0 < self.period_hours <= MAX_PERIOD_HOURS:
            raise ValueError(f"period_hours must be > 0 and at most {MAX_PERIOD_HOURS} (a year), got {self.period_hours}")
        if self.method not in ("logme", "linear_probe"):
            raise ValueError(f"method must be logme or linear_probe, got {self.method!r}")
        if self.probe_train_cap < 2:
            raise ValueError(f"probe_train_cap must be at least 2 examples, got {self.probe_train_cap}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SelectionOptions:
        env = os.environ if environ is None else environ
        d = cls()
        k = env.get("STARTPOINT_SELECT_K", "").strip()
        cap = env.get("STARTPOINT_SELECT_PROBE_TRAIN_CAP", "").strip()
        budget = env.get("STARTPOINT_SELECT_BUDGET", "").strip()
        for name, text in (("STARTPOINT_SELECT_K", k), ("STARTPOINT_SELECT_PROBE_TRAIN_CAP", cap),
                           ("STARTPOINT_SELECT_BUDGET", budget)):
            if text and not text.isdigit():
                raise ValueError(f"{name}={text!r} is not a whole number")
        period = env.get("STARTPOINT_SELECT_PERIOD_HOURS", "").strip()
        try:
            period_hours = float(period) if period else d.period_hours
        except ValueError:
            raise ValueError(f"STARTPOINT_SELECT_PERIOD_HOURS={period!r} is not a number of hours") from None
        targets = env.get("STARTPOINT_SELECT_TARGETS", "").strip()
        return cls(
            k=int(k) if k else d.k,
            method=env.get("STARTPOINT_SELECT_METHOD", "").strip() or d.method,
            proxy_dataset=env.get("STARTPOINT_SELECT_PROXY", "").strip(),
            targets=tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else (),
            seeds=_env_ints(env, "STARTPOINT_SELECT_SEEDS", d.seeds),
            baseline_seeds=_env_ints(env, "STARTPOINT_SELECT_BASELINE_SEEDS", d.baseline_seeds),
            probe_train_cap=int(cap) if cap else d.probe_train_cap,
            budget=int(budget) if budget else d.budget,
            period_hours=period_hours,
        )


@dataclass(frozen=True)
class SelectionStage:
    """What a selection asks for now: `phase` is `probe` (some candidates lack a score), `finetune` (all are
    probed: the baseline and the top k), and `ranked` the ranking it used (empty while probing)."""

    phase: str
    steps: list[Step]
    ranked: list[tuple[str, float]]
    note: str


def selection_steps(
    architecture: str,
    pretrained: str,
    candidates: Sequence[Candidate],
    probe_rows: Iterable[Mapping[str, Any]],
    options: SelectionOptions,
    *,
    proxy: str,
    probe_failed: set[str] = frozenset(),
    default_targets: Sequence[str] = (),
) -> SelectionStage:
    """Probe the candidates without a score on `proxy` (those whose probe failed count as done); once none is
    left, rank by `options.method` and plan the finetunes (`startpoint.probes.selection.plan_finetunes`)."""
    from startpoint.probes.selection import plan_finetunes, rank_by_probe

    rows = list(probe_rows)
    scored = {r["model_id"] for r in rows if r["proxy_dataset"] == proxy and r["architecture"] == architecture}
    todo = [c for c in candidates if c.model_id not in scored and c.model_id not in probe_failed]
    if todo:
        steps = [Step(PROBE, model=c.model_id, config={"proxy_dataset": proxy, "train_cap": options.probe_train_cap})
                 for c in todo]
        return SelectionStage("probe", steps, [], f"{len(todo)} of {len(candidates)} {architecture} candidate(s) "
                                                  f"to probe on {proxy}")
    ranked = rank_by_probe(rows, architecture, options.method, proxy)
    plans = plan_finetunes(ranked, k=options.k, pretrained=pretrained, targets=options.targets or default_targets,
                           seeds=options.seeds, baseline_seeds=options.baseline_seeds, method=options.method)
    steps = [Step(FINETUNE, model=p.model_id, target=t, config={"seeds": list(p.seeds)}, reason=p.reason)
             for p in plans for t in p.targets]
    chosen = "; ".join(f"{p.model_id} ({p.reason})" for p in plans)
    return SelectionStage("finetune", steps, ranked, f"{len(ranked)} probed {architecture} model(s); finetune {chosen}")


def finetune_count(config: Mapping[str, Any]) -> int:
    """The finetunes one finetune partition's config asks for: one per seed. A config without seeds counts as one
    (the selection's steps always name their seeds, so its budget never meets one)."""
    return len(config.get("seeds", ())) or 1


def within_budget(steps: Sequence[Step], left: int) -> list[Step]:
    """The leading finetune steps whose seeds fit in `left` finetunes, in the selection's order (the baseline,
    then the candidates by probe rank). It stops at the first that does not fit rather than skip to a cheaper one,
    so a period's budget never goes to a lower rank before a higher one; a step's seeds share one run, never split."""
    kept: list[Step] = []
    for step in steps:
        cost = finetune_count(step.config)
        if cost > left:
            break
        kept.append(step)
        left -= cost
    return kept


def selection_pretrained(architecture: str) -> str:
    """The pretrained baseline of an architecture: the packaged encoder when there is one, else its Hub id."""
    from startpoint.hub.architectures import ARCHITECTURES
    from startpoint.zoo import PRETRAINED

    arch = ARCHITECTURES[architecture]
    return next((m for m, p in PRETRAINED.items() if p.architecture == arch.name), arch.hub_id)


def selection_stage(architecture: str, options: SelectionOptions, lake_url: str, models_dir: Path,
                    probe_failed: set[str] = frozenset()) -> SelectionStage:
    """`selection_steps` on the candidates and probe scores the lake and the models folder hold now: the offline
    zoo's models of the architecture and the Hub catalog's accepted ones."""
    from startpoint import lake as lake_files
    from startpoint.grid import DEFAULT_GRID
    from startpoint.hub.architectures import ARCHITECTURES
    from startpoint.probes.candidates import hub_candidates, zoo_models
    from startpoint.probes.run import default_proxy

    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    candidates = [c for c in zoo_models(models_dir) if c.architecture == architecture]
    candidates += hub_candidates(lake_url, architecture)
    return selection_steps(
        architecture, selection_pretrained(architecture), candidates,
        lake_files.read(lake_url, "probe_scores").to_pylist(), options,
        proxy=options.proxy_dataset or default_proxy(), probe_failed=probe_failed,
        default_targets=DEFAULT_GRID.targets,
    )
