"""The new-model sensor: one partition and one probe request per newly seen model, nothing on a quiet tick."""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg

from assets.hub_catalog import hub_models_lake
from pipelines.hub.automation import PROBE_SCORES_KEY, hub_catalog_refresh, hub_new_models
from pipelines.partitions import base_models_partitions, encode_key
from pipelines.resources import HomeResource, LakeResource

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
NEW_MODEL = "dennishe97/codebert-base-v3.3"


def refresh_catalog(recording, resources, instance):
    for arch in ("roberta-base", "bert-base-uncased"):
        dg.materialize(
            [hub_models_lake],
            partition_key=arch,
            resources=resources,
            run_config={"ops": {"lake__hub_models": {"config": {"recording": str(recording)}}}},
            instance=instance,
        )


def tick(instance, cursor, resources):
    """Evaluate the sensor and apply its partition requests, as the daemon would."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = hub_new_models(context)
    if isinstance(result, dg.SkipReason):
        return [], [], cursor
    added = [k for req in result.dynamic_partitions_requests for k in req.partition_keys]
    instance.add_dynamic_partitions(base_models_partitions.name, added)
    return added, result.run_requests, result.cursor


def test_a_new_hub_model_gets_one_partition_and_one_probe_request(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "home"))
    recording = tmp_path / "recording"
    shutil.copytree(FIXTURES, recording)
    resources = {"lake": LakeResource(url=str(tmp_path / "lake")), "home": HomeResource(path=str(tmp_path / "home"))}
    instance = dg.DagsterInstance.ephemeral()

    refresh_catalog(recording, resources, instance)
    added, requests, cursor = tick(instance, None, resources)
    # 22 accepted Hub models plus the packaged pretrained encoder of the offline zoo.
    assert len(added) == len(requests) == 23
    assert encode_key("sentence-transformers/all-MiniLM-L6-v2") in added
    assert encode_key("dingkun/retrievalv2") not in added  # refused models are never probed

    entries = json.loads((recording / "models.json").read_text())
    extra = json.loads((recording / "extra_models.json").read_text())
    (recording / "models.json").write_text(json.dumps(entries + extra))
    refresh_catalog(recording, resources, instance)
    added, requests, cursor = tick(instance, cursor, resources)
    assert added == [encode_key(NEW_MODEL)]
    assert len(requests) == 1
    assert requests[0].partition_key == encode_key(NEW_MODEL)
    assert requests[0].asset_selection == [PROBE_SCORES_KEY]

    added, requests, _ = tick(instance, cursor, resources)
    assert added == [] and requests == []


def test_daily_refresh_lists_every_architecture():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 26))
    keys = [r.partition_key for r in hub_catalog_refresh(context)]
    assert keys == ["all-MiniLM-L6-v2", "bert-base-uncased", "roberta-base"]
