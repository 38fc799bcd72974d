"""The new-model sensor: one partition and one probe request per newly seen model, nothing on a quiet tick."""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg

from assets.hub_catalog import hub_models_lake
from assets.partitions import base_models_partitions
from assets.resources import HomeResource, LakeResource
from pipelines.hub_automation import (
    PROBE_SCORES_KEY,
    hub_catalog_refresh,
    hub_new_models,
)
from startpoint.keys import encode_key

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
    # 22 accepted Hub models plus the two packaged pretrained encoders of the offline zoo (MiniLM-L6 and -L3).
    assert len(added) == len(requests) == 24
    assert encode_key("sentence-transformers/all-MiniLM-L6-v2") in added
    assert encode_key("sentence-transformers/paraphrase-MiniLM-L3-v2") in added
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
    assert keys == ["all-MiniLM-L6-v2", "bert-base-uncased", "paraphrase-MiniLM-L3-v2", "roberta-base"]


def test_bad_model_folders_are_skipped_and_reported_and_the_good_ones_still_found(tmp_path, monkeypatch):
    """One bad folder never stops automation: a malformed startpoint.json, an odd folder name, a folder without a
    tokenizer or without config.json is skipped and reported; the pretrained and the good local model are found."""
    from pipelines.hub_automation import new_probe_requests
    from startpoint.zoo import DEFAULT_BASE, resolve

    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    models = home / "models"
    base = resolve(DEFAULT_BASE)

    def model_folder(name, card='{"architecture": "all-MiniLM-L6-v2"}', skip=()):
        folder = models / name
        folder.mkdir(parents=True)
        for f in base.iterdir():
            if f.is_file() and f.name not in skip:
                if f.name == "model.safetensors":
                    (folder / f.name).symlink_to(f)
                else:
                    shutil.copy(f, folder / f.name)
        (folder / "startpoint.json").write_text(card)
        return folder

    model_folder("local--good-model")
    model_folder("local--bad-card", card='{"architecture": "all-MiniLM')
    model_folder("local--list-card", card='["all-MiniLM-L6-v2"]')
    model_folder("my model (copy)")
    model_folder("local--no-tokenizer", skip=("tokenizer.json", "vocab.txt"))
    (models / "local--empty").mkdir()
    (models / ".partial").mkdir()  # saves in progress: not reported
    (models / "notes.txt").write_text("not a model")

    skipped = []
    _, keys = new_probe_requests(str(home / "lake"), models, set(), set(), skipped)
    # Both packaged encoders (MiniLM-L3 is rebuilt into the models folder, listed once, as a packaged model).
    pretrained = [encode_key(DEFAULT_BASE), encode_key("sentence-transformers/paraphrase-MiniLM-L3-v2")]
    assert keys == [*pretrained, "local--good-model"]
    reported = {str(s.folder).rsplit("/", 1)[-1]: s.reason for s in skipped}
    assert set(reported) == {"local--bad-card", "local--list-card", "my model (copy)", "local--no-tokenizer",
                             "local--empty"}
    assert "startpoint.json is not valid JSON" in reported["local--bad-card"]
    assert "not a JSON object" in reported["local--list-card"]
    assert "whitespace" in reported["my model (copy)"]
    assert "no tokenizer files" in reported["local--no-tokenizer"]
    assert "no config.json" in reported["local--empty"]

    resources = {"lake": LakeResource(url=str(tmp_path / "lake")), "home": HomeResource(path=str(home))}
    instance = dg.DagsterInstance.ephemeral()
    added, requests, cursor = tick(instance, None, resources)
    assert added == [*pretrained, "local--good-model"] and len(requests) == 3
    quiet = hub_new_models(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    assert isinstance(quiet, dg.SkipReason)
    assert "skipped 5" in quiet.skip_message and "my model (copy)" in quiet.skip_message
