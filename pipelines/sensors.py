"""Sensors."""

from __future__ import annotations

ALL_SENSORS: list = []

from pipelines.hub.automation import hub_new_models  # noqa: E402

ALL_SENSORS.append(hub_new_models)
