"""Sensors."""

from __future__ import annotations

ALL_SENSORS: list = []
