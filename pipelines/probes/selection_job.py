"""`select_<architecture>` jobs: probe every candidate, then finetune the top k and the baseline via the engine.

Both steps materialize asset partitions (`lake/probe_scores` per model, `lake/finetune_runs` per model x target)
on the job's own Dagster instance, so every score lands in the lake and the warehouse like any other run, and
partitions already done are skipped by those assets.
"""


import dagster as dg
from pydantic import Field

from pipelines.hub.architectures import ARCHITECTURES


class SelectionConfig(dg.Config):
    architecture: str
    k: int = Field(3, description="How many best-probed candidates get the full evaluation")
    # LogME by default: at the probe's cheap budget it keeps the ranking of a 16x larger probe, the linear
    # head's 3-fold accuracy does not (docs/hub_and_probes.md, benchmarks/probe_fidelity.py).
    method: str = Field("logme", description="logme | linear_probe")
    proxy_dataset: str = Field("", description="Probe dataset; empty: the probe default (MNLI online, offline set)")
    targets: list[str] = Field(default_factory=list, description="Target suite; empty: the engine's default grid targets")
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    baseline_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    probe_train_cap: int = 256


def _resources():
    from pipelines.resources import HomeResource, LakeResource
    from pipelines.settings import get_settings

    settings = get_settings()
    return {"lake": LakeResource(url=settings.lake_url), "home": HomeResource(path=str(settings.home))}


def _materialize(context, asset, key, config: dict, resources) -> bool:
    result = dg.materialize(
        [asset], partition_key=key, instance=context.instance, resources=resources, raise_on_error=False,
        run_config={"ops": {asset.op.name: {"config": config}}},
    )
    if not result.success:
        context.log.error(f"partition {key} of {asset.key.to_user_string()} failed; see run {result.run_id}")
    return result.success


@dg.op(description="Probe every zoo and accepted Hub model of the architecture that has no probe score yet.")
def probe_candidates(context: dg.OpExecutionContext, config: SelectionConfig) -> list:
    from assets.probes import probe_scores_lake
    from pipelines import lake as lake_files
    from pipelines.partitions import base_models_partitions, encode_key
    from pipelines.probes.candidates import hub_candidates, is_probed, zoo_models
    from pipelines.probes.run import default_proxy
    from pipelines.probes.selection import rank_by_probe

    if config.architecture not in ARCHITECTURES:
        raise dg.Failure(f"unknown architecture {config.architecture!r}; known: {sorted(ARCHITECTURES)}")
    resources = _resources()
    lake_url, models_dir = resources["lake"].url, resources["home"].models_dir
    proxy = config.proxy_dataset or default_proxy()
    cands = [c for c in zoo_models(models_dir) if c.architecture == config.architecture]
    cands += hub_candidates(lake_url, config.architecture)
    todo = [c for c in cands if not is_probed(lake_url, c.model_id)]
    context.instance.add_dynamic_partitions(base_models_partitions.name, [encode_key(c.model_id) for c in todo])
    probe_config = {"proxy_dataset": proxy, "train_cap": config.probe_train_cap}
    for i, cand in enumerate(todo, 1):
        context.log.info(f"probe {i}/{len(todo)}: {cand.model_id}")
        _materialize(context, probe_scores_lake, encode_key(cand.model_id), probe_config, resources)
    ranked = rank_by_probe(lake_files.read(lake_url, "probe_scores").to_pylist(), config.architecture, config.method, proxy)
    context.log.info(f"{len(ranked)} probed models; best: {ranked[:5]}")
    return ranked


@dg.op(description="Finetune the top k by probe and the pretrained baseline (more seeds) on the target suite.")
def finetune_top_k(context: dg.OpExecutionContext, config: SelectionConfig, ranked: list) -> dict:
    from assets.finetune import finetune_runs
    from pipelines.engine.grid import DEFAULT_GRID
    from pipelines.hub.download import install_for_engine
    from pipelines.hub.policy import SafetyPolicy
    from pipelines.partitions import encode_key
    from pipelines.probes.candidates import hub_row
    from pipelines.probes.selection import plan_finetunes
    from pipelines.zoo import PRETRAINED, local_model_dir

    resources = _resources()
    lake_url, home = resources["lake"].url, resources["home"]
    arch = ARCHITECTURES[config.architecture]
    pretrained = next((m for m, p in PRETRAINED.items() if p.architecture == arch.name), arch.hub_id)
    plans = plan_finetunes(
        [tuple(r) for r in ranked], k=config.k, pretrained=pretrained, targets=config.targets or DEFAULT_GRID.targets,
        seeds=config.seeds, baseline_seeds=config.baseline_seeds, method=config.method,
    )
    policy = SafetyPolicy.from_env()
    for plan in plans:
        if plan.model_id not in PRETRAINED and not local_model_dir(plan.model_id, home.models_dir).is_dir():
            row = hub_row(lake_url, plan.model_id)  # a Hub model: link its checked download where the engine looks
            from pipelines.hub.runtime import hub_access

            with hub_access():
                install_for_engine(plan.model_id, arch, policy, revision=row and row["revision"],
                                   cache_dir=home.cache_dir / "hub", models_dir=home.models_dir)
    context.instance.add_dynamic_partitions("base_models", [encode_key(p.model_id) for p in plans])
    context.instance.add_dynamic_partitions("targets", [encode_key(t) for t in plans[0].targets])
    done, failed = 0, 0
    for plan in plans:
        context.log.info(f"{plan.model_id}: {plan.reason}; targets {list(plan.targets)}, seeds {list(plan.seeds)}")
        for target in plan.targets:
            key = dg.MultiPartitionKey({"model": encode_key(plan.model_id), "target": encode_key(target)})
            ok = _materialize(context, finetune_runs, key, {"seeds": list(plan.seeds)}, resources)
            done, failed = done + ok, failed + (not ok)
    if failed:
        raise dg.Failure(f"{failed} finetune partition(s) failed (of {done + failed}); see their runs")
    return {"selected": [p.model_id for p in plans[1:]], "partitions": done}


def _job_name(architecture: str) -> str:
    return "select_" + "".join(c if c.isalnum() else "_" for c in architecture)


def selection_job(architecture: str) -> dg.JobDefinition:
    @dg.job(
        name=_job_name(architecture),
        description=f"Probe every {architecture} candidate, then finetune the top k and the baseline on the targets.",
        config={"ops": {"probe_candidates": {"config": {"architecture": architecture}},
                        "finetune_top_k": {"config": {"architecture": architecture}}}},
    )
    def _job():
        finetune_top_k(probe_candidates())

    return _job


SELECTION_JOBS = [selection_job(a) for a in sorted(ARCHITECTURES)]
