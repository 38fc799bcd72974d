"""Every ranked architecture has a `select_<architecture>` sensor, or a stated reason why not (pipelines/launch.py)."""

from __future__ import annotations

import pytest

from pipelines.definitions import defs
from pipelines.launch import NOT_SELECTABLE, selection_name
from startpoint.hub.architectures import ARCHITECTURES

from published_fixture import SHARED


def test_each_selectable_architecture_has_its_sensor():
    names = {s.name for s in defs.sensors}
    assert {selection_name(a) for a in ARCHITECTURES} <= names
    assert not set(NOT_SELECTABLE) & set(ARCHITECTURES), "an architecture with a sensor needs no reason"
    assert all(len(why) > 40 for why in NOT_SELECTABLE.values())


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")
def test_every_published_architecture_has_a_sensor_or_a_reason():
    from startpoint.published.reader import read_folder

    ranked = set(read_folder(SHARED).architectures)
    assert ranked, "the shared folder ranks some architectures"
    assert ranked - set(ARCHITECTURES) - set(NOT_SELECTABLE) == set()
    assert "t5-base" in NOT_SELECTABLE
