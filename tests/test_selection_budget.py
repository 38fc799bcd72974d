"""A selection sensor within a budget (issue 19, item 3): each tick asks only for the finetunes that fit in what is
left of the period's budget, in the selection's order (baseline, then probe rank), never twice, each run tagged with
why it was asked for. Real sensor ticks on a lake with a Hub catalog and probe scores; no finetune runs."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from assets.resources import HomeResource, LakeResource
from pipelines.launch import GRID_TAG, JOB_NAMES, REASON_TAG, RUN_KEY_TAG, grid_definitions, selection_sensor
from startpoint import lake as lake_files
from startpoint.keys import encode_key
from startpoint.plan import FINETUNE, SelectionOptions, Step, within_budget

ARCH = "all-MiniLM-L6-v2"
PRETRAINED = "sentence-transformers/all-MiniLM-L6-v2"
SCORES = {PRETRAINED: 1.0, "someone/minilm-a": 3.0, "someone/minilm-b": 2.0}  # probe order: a, b, pretrained
TARGETS = ("trump_tweet_device", "ucla_course_subject")
NAME = "select_all_MiniLM_L6_v2"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    url = str(home / "lake")
    lake_files.write(url, "hub_models", f"hub/{ARCH}", [
        {"model_id": m, "architecture": ARCH, "source": "hub", "status": "accepted", "revision": "abc"}
        for m in SCORES if m != PRETRAINED])
    for model, score in SCORES.items():
        lake_files.write(url, "probe_scores", f"local/{encode_key(model)}/tweets_sentiment", [
            {"model_id": model, "architecture": ARCH, "method": "logme", "proxy_dataset": "tweets_sentiment",
             "score": score}])
    for name, value in {"STARTPOINT_SELECT_PROXY": "tweets_sentiment", "STARTPOINT_SELECT_K": "2",
                        "STARTPOINT_SELECT_TARGETS": ",".join(TARGETS), "STARTPOINT_SELECT_SEEDS": "0,1",
                        "STARTPOINT_SELECT_BASELINE_SEEDS": "0,1,2", "STARTPOINT_SELECT_BUDGET": "7",
                        "STARTPOINT_SELECT_PERIOD_HOURS": "1"}.items():
        monkeypatch.setenv(name, value)
    return home


def _tick(instance, home):
    resources = {"lake": LakeResource(url=str(home / "lake")), "home": HomeResource(path=str(home))}
    result = selection_sensor(ARCH)(dg.build_sensor_context(instance=instance, resources=resources))
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _launched(instance, requests) -> None:
    """What the daemon does with a tick's requests: one run each, with the request's config and tags, and its
    partition and run key as tags."""
    job = grid_definitions().resolve_job_def(JOB_NAMES[FINETUNE])
    for r in requests:
        instance.create_run_for_job(job, run_config=r.run_config, tags={
            **r.tags, "dagster/partition": str(r.partition_key), RUN_KEY_TAG: r.run_key})


def _asked(result) -> list[tuple[str, str, int, str]]:
    out = []
    for r in result.run_requests:
        model, target = str(r.partition_key).split("|")
        out.append((model, target, len(r.run_config["ops"]["lake__finetune_runs"]["config"]["seeds"]),
                    r.tags[REASON_TAG]))
        assert r.tags[GRID_TAG] == NAME
    return out


def test_each_tick_asks_for_what_fits_in_the_period_budget_in_rank_order(home, monkeypatch):
    pre, a, b = (encode_key(m) for m in (PRETRAINED, "someone/minilm-a", "someone/minilm-b"))
    with dg.instance_for_test() as instance:
        # Budget 7: the baseline's 3 seeds on each target (6); the top candidate's next 2 seeds do not fit.
        first = _tick(instance, home)
        assert _asked(first) == [(pre, TARGETS[0], 3, "baseline"), (pre, TARGETS[1], 3, "baseline")]
        _launched(instance, first.run_requests)

        # The same period: 6 of 7 spent, nothing new fits; the tick says so and asks for nothing.
        second = _tick(instance, home)
        assert not second.run_requests
        message = second.skip_reason.skip_message
        assert "6 of 7 finetune(s) asked for in the last 1 h" in message and "4 finetune partition(s) wait" in message

        # A new period (one of 1.8 s): the top candidate on both targets, then the second on the first target.
        monkeypatch.setenv("STARTPOINT_SELECT_PERIOD_HOURS", "0.0005")
        time.sleep(2.0)
        third = _tick(instance, home)
        asked = _asked(third)
        assert [x[:3] for x in asked] == [(a, TARGETS[0], 2), (a, TARGETS[1], 2), (b, TARGETS[0], 2)]
        assert asked[0][3].startswith("top 1 by logme") and asked[2][3].startswith("top 2 by logme")
        _launched(instance, third.run_requests)

        # Nothing is asked for twice: the baseline's runs are not in the lake, but they were requested.
        time.sleep(2.0)
        fourth = _tick(instance, home)
        assert [x[:3] for x in _asked(fourth)] == [(b, TARGETS[1], 2)]
        _launched(instance, fourth.run_requests)
        time.sleep(2.0)
        everything = _tick(instance, home)  # all asked for, none in the lake: it says so, and asks for nothing
        assert not everything.run_requests and "was asked for already (6" in everything.skip_reason.skip_message

        # A changed config is a new request (a new run key, as without a budget): 3 seeds per candidate.
        monkeypatch.setenv("STARTPOINT_SELECT_SEEDS", "0,1,2")
        fifth = _tick(instance, home)
        assert [x[:3] for x in _asked(fifth)] == [(a, TARGETS[0], 3), (a, TARGETS[1], 3)]


def test_without_a_budget_the_tick_asks_for_every_finetune_at_once(home, monkeypatch):
    monkeypatch.delenv("STARTPOINT_SELECT_BUDGET")
    with dg.instance_for_test() as instance:
        result = _tick(instance, home)
    assert sum(n for _, _, n, _ in _asked(result)) == 2 * 3 + 2 * 2 * 2


def test_the_budget_keeps_rank_order_and_never_splits_a_run():
    steps = [Step(FINETUNE, model=m, target="t", config={"seeds": list(range(n))}) for m, n in
             (("base", 5), ("top1", 2), ("top2", 2))]
    assert [s.model for s in within_budget(steps, 8)] == ["base", "top1"]
    assert [s.model for s in within_budget(steps, 4)] == []  # the baseline first, whole, or nothing
    assert [s.model for s in within_budget(steps, 9)] == ["base", "top1", "top2"]


def test_budget_options_come_from_the_environment_with_one_line_errors():
    options = SelectionOptions.from_env({"STARTPOINT_SELECT_BUDGET": "40", "STARTPOINT_SELECT_PERIOD_HOURS": "168"})
    assert (options.budget, options.period_hours) == (40, 168.0)
    assert (SelectionOptions().budget, SelectionOptions().period_hours) == (0, 24.0)
    with pytest.raises(ValueError, match="STARTPOINT_SELECT_BUDGET='ten' is not a whole number"):
        SelectionOptions.from_env({"STARTPOINT_SELECT_BUDGET": "ten"})
    with pytest.raises(ValueError, match="STARTPOINT_SELECT_PERIOD_HOURS='a week' is not a number of hours"):
        SelectionOptions.from_env({"STARTPOINT_SELECT_PERIOD_HOURS": "a week"})
    for bad in ("0", "inf", "nan", "1e8"):
        with pytest.raises(ValueError, match="period_hours must be > 0 and at most 8760"):
            SelectionOptions.from_env({"STARTPOINT_SELECT_PERIOD_HOURS": bad})
    # a budget below one partition's seeds could never ask for anything: refused, in one line
    with pytest.raises(ValueError, match="budget must be 0 .no cap. or at least 5 finetunes"):
        SelectionOptions.from_env({"STARTPOINT_SELECT_BUDGET": "4"})
    assert SelectionOptions.from_env({"STARTPOINT_SELECT_BUDGET": "3", "STARTPOINT_SELECT_BASELINE_SEEDS": "0,1,2"}
                                     ).budget == 3


def test_a_bad_budget_setting_is_the_ticks_skip_reason(home, monkeypatch):
    monkeypatch.setenv("STARTPOINT_SELECT_BUDGET", "2")
    resources = {"lake": LakeResource(url=str(home / "lake")), "home": HomeResource(path=str(home))}
    with dg.instance_for_test() as instance:
        result = selection_sensor(ARCH)(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith("budget must be 0 (no cap) or at least 3 finetunes")
