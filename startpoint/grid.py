"""The embedded default grid and the full grid: which sources, targets, base models, seeds and recipes.

A grid has one or more pretrained base models (one per local architecture); each base gets its own intermediate
model per source, and the ranking is per architecture. After the target runs, each base's top models by mean
gain in the lake's runs are fused (`Grid.fusion_recipes`, docs/fusion.md) and the fused model is finetuned and
probed like the others. This module only says what a grid is: `startpoint.plan.grid_steps` turns a grid
into steps (datasets, intermediate models, finetune and probe partitions, fusions) and their order, and
`pipelines.launch` runs them through Dagster (the `default_grid` / `full_grid` sensors, or `run_grid` for
`startpoint run-grid`).
"""


from dataclasses import dataclass, field

from startpoint.engine.recipe import Recipe
from startpoint.probes.run import OFFLINE_PROXY
from startpoint.zoo import DEFAULT_BASE, intermediate_id

# The second local architecture: 3 layers × 384, rebuilt from its packaged ONNX export (startpoint/zoo/onnx_rebuild.py).
MINILM_L3 = "sentence-transformers/paraphrase-MiniLM-L3-v2"

# Recipe of the target runs: the Recipe defaults (documented in docs/engine.md) with 192 training and 200 test
# examples, which keep `make run` within its bound beside a busy process (256 and 300 did not: docs/engine.md) ...
TARGET_RECIPE = Recipe(train_cap=192, test_cap=200)
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
    `lake/finetune_runs`, selections and benchmarks)."""
    return TARGET_RECIPE_OVERRIDES.get(target, TARGET_RECIPE)


# Small enough for `make run` (≤ 10 minutes on 2 cores beside a busy process, with the published import): PyPI-only
# sets, and the cheapest cells that keep the grid's shape (two architectures, an intermediate and a fused model each,
# three targets, two seeds). shakespeare_genre needs 512 examples of long speeches to beat its majority class and
# was about half of the grid's finetuning time; it is in the full grid.
DEFAULT_GRID = Grid(
    name="default",
    # Targets: sets on which the target recipe clearly beats the majority class (measured, MiniLM-L6 seed 0, 192
    # training and 200 test examples: tweets_sentiment 60.5% vs 43.0%, trump_tweet_device 73.0% vs 54.0%,
    # ucla_course_subject 53.0% vs 11.0%).
    # Source: fine_foods, a real source on both bases with SOURCE_RECIPE (source test accuracy 10+ points above
    # the majority share and within 5 of more data; benchmarks/local_sources.py). ucla_course_subject qualifies as
    # a source too, but is a target here: a model is never finetuned on its own source, and the fused model
    # would carry it into that target.
    sources=("fine_foods",),
    targets=("tweets_sentiment", "trump_tweet_device", "ucla_course_subject"),
    seeds=(0, 1),
    # Two local architectures, so that "one ranking per architecture" is exercised: MiniLM-L6 and MiniLM-L3.
    base_models=(DEFAULT_BASE, MINILM_L3),
)


def full_grid() -> Grid:
    """Every installed offline set as source and as target, 3 seeds (hours on CPU; minutes on a GPU)."""
    from startpoint.data import installed

    available = tuple(installed())
    return Grid(name="full", sources=available, targets=available, seeds=(0, 1, 2), base_models=DEFAULT_GRID.base_models,
                fusion_recipes=("top2-avg", "top3-avg", "top5-avg", "top2-ta0.5"))
