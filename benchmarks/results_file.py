"""Where every benchmark writes its figures: benchmarks/results/<name>.json (the folder is made if missing)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, data: Any) -> Path:
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote benchmarks/results/{path.name}")
    return path


def machine() -> dict:
    """The machine a benchmark ran on, as the results files record it."""
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
