"""The asset-check results of a lake asset's own checks, from the problems each check found (one list per check)."""

from __future__ import annotations

import dagster as dg

SHOWN = 5  # offending rows named in a failed check


def check_results(asset_key: dg.AssetKey, problems: dict[str, list[str]]) -> list[dg.AssetCheckResult]:
    """One ERROR-severity result per check, naming the first offending rows ("holds" when there is none)."""
    return [dg.AssetCheckResult(
        asset_key=asset_key, check_name=name, passed=not found, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(found[:SHOWN]) if found else "holds",
        metadata={"offending": len(found)}) for name, found in problems.items()]
