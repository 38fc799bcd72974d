"""Which executor the grid's jobs run their steps with: chosen by configuration, read in this one place.

`STARTPOINT_EXECUTOR` (read when the code location loads):

* `multiprocess` (default): `recovering_executor`, Dagster's multiprocess executor plus the project's kill -9
  recovery and INFO lines on pool waits (`pipelines.recovery`);
* `in_process`: every step in the run's own process, with the same recovery;
* `celery`: `dagster_celery`'s executor: each step is a Celery task that a worker runs (broker and backend from
  `STARTPOINT_CELERY_BROKER` / `STARTPOINT_CELERY_BACKEND`, else Celery's defaults; install the `cluster` extra);
* `k8s`: `dagster_k8s`'s job executor: each step is a Kubernetes job (install the `cluster` extra).

Celery and Kubernetes steps run on other machines, where a process id says nothing: they get no process
tags. A value outside this list stops the code location with one line naming the variable and the choices.
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.recovery import RecoveringExecutor, recovering_executor

EXECUTOR_ENV = "STARTPOINT_EXECUTOR"
EXECUTORS = ("multiprocess", "in_process", "celery", "k8s")


class ExecutorChoiceError(ValueError):
    """`STARTPOINT_EXECUTOR` names no executor this project knows."""


@dg.executor(name="in_process_recovering", config_schema=dg.in_process_executor.config_schema)
def recovering_in_process_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's in-process executor plus `RecoveringExecutor` (process tags, dead-run recovery, INFO on waits)."""
    return RecoveringExecutor(dg.in_process_executor.executor_creation_fn(init_context))


def executor_choice(environ: dict | None = None) -> str:
    value = (environ if environ is not None else os.environ).get(EXECUTOR_ENV, "").strip() or "multiprocess"
    if value not in EXECUTORS:
        raise ExecutorChoiceError(f"{EXECUTOR_ENV}={value!r} is not one of {', '.join(EXECUTORS)}; "
                                  f"unset it for the default (multiprocess)")
    return value


def configured_executor(environ: dict | None = None) -> dg.ExecutorDefinition:
    """The executor `STARTPOINT_EXECUTOR` names (module docstring)."""
    env = environ if environ is not None else os.environ
    choice = executor_choice(env)
    if choice == "multiprocess":
        return recovering_executor
    if choice == "in_process":
        return recovering_in_process_executor
    if choice == "celery":
        celery_executor = _cluster_module("dagster_celery", choice).celery_executor

        config = {k: env[v] for k, v in (("broker", "STARTPOINT_CELERY_BROKER"),
                                         ("backend", "STARTPOINT_CELERY_BACKEND")) if env.get(v)}
        return celery_executor.configured(config, name="celery") if config else celery_executor
    return _cluster_module("dagster_k8s", choice).k8s_job_executor


def _cluster_module(name: str, choice: str):
    """The executor's package, or one line saying how to install it (the `cluster` extra)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise ExecutorChoiceError(f"{EXECUTOR_ENV}={choice} needs {name.replace('_', '-')}: install the cluster extra "
                                  "(pip install -e '.[cluster]', as make cluster-test does)") from None
