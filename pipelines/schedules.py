"""Schedules."""

from __future__ import annotations

ALL_SCHEDULES: list = []

from pipelines.hub_automation import hub_catalog_refresh  # noqa: E402

ALL_SCHEDULES.append(hub_catalog_refresh)
