"""A warehouse built from any folder in the model-recycling format, as a user builds it: the `published` job run
by the `dagster` CLI in a fresh home. Benchmarks take `--published DIR` and read the warehouse this returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_published_warehouse(folder: str | Path, home: str | Path | None = None) -> Path:
    """Run the `published` job on `folder` into `home` (a new temporary folder by default); return the warehouse
    path. Exits with the job's last lines when it fails."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        sys.exit(f"--published {folder}: no such folder (a folder in the model-recycling format)")
    home = Path(home or tempfile.mkdtemp(prefix="startpoint-published-")).resolve()
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "STARTPOINT_HOME": str(home), "STARTPOINT_PUBLISHED_RESULTS": str(folder),
           "DAGSTER_HOME": str(dagster_home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("STARTPOINT_WAREHOUSE", None)
    env.pop("STARTPOINT_LAKE", None)
    print(f"building the warehouse of {folder} in {home} (the published job) ...", file=sys.stderr)
    done = subprocess.run([str(bin_dir / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j",
                           "published"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        sys.exit(f"the published job failed on {folder}:\n{tail}")
    return home / "warehouse.duckdb"
