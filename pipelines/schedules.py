"""Schedules."""

from __future__ import annotations

ALL_SCHEDULES: list = []
