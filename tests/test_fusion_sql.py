"""`fusion_vs_members` (sql/models/analyses/fusion_vs_members.sql) against a numpy/scipy recomputation on a small
hand-made lake: a fused model, its two members and their base, with a target one member lacks and a user run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

from startpoint import lake
from startpoint.warehouse.load import load_tables

REPO = Path(__file__).resolve().parents[1]
ARCH, BASE, A, B, FUSED = "arch-x", "org/base", "local/a", "local/b", "local/x-fused-top2-avg-0000"
# Seed scores per (model, target); t5 has no run of B, so only t1-t4 are shared.
SCORES = {
    BASE: {"t1": (50, 52), "t2": (60, 60), "t3": (70, 71), "t4": (40, 44), "t5": (30, 30)},
    A: {"t1": (53, 55), "t2": (59, 61), "t3": (72, 72), "t4": (41, 41), "t5": (35, 35)},
    B: {"t1": (51, 51), "t2": (64, 62), "t3": (70, 68), "t4": (45, 47)},
    FUSED: {"t1": (56, 54), "t2": (63, 63), "t3": (71, 73), "t4": (44, 42), "t5": (99, 99)},
}


def _hub(model, role, members=None, base=None):
    return {"model_id": model, "architecture": ARCH, "source": "local", "role": role, "base_model": base,
            "members": members, "status": "accepted"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion_sql")
    url = str(root / "lake")
    lake.write(url, "hub_models", "x", [_hub(BASE, "pretrained"), _hub(A, "intermediate", base=BASE),
                                        _hub(B, "intermediate", base=BASE),
                                        _hub(FUSED, "fused", members=[B, A], base=BASE)])
    runs = [{"run_id": f"{m}|{t}|{s}", "model_id": m, "architecture": ARCH, "dataset_id": t, "seed": s,
             "score": float(score), "metric": "accuracy", "origin": "local", "status": "ok"}
            for m, per in SCORES.items() for t, seeds in per.items() for s, score in enumerate(seeds)]
    runs.append({"run_id": "user", "model_id": FUSED, "architecture": ARCH, "dataset_id": "t1", "seed": 9,
                 "score": 0.0, "metric": "accuracy", "origin": "user", "status": "ok"})
    runs.append({"run_id": "failed", "model_id": A, "architecture": ARCH, "dataset_id": "t2", "seed": 9,
                 "score": None, "metric": "accuracy", "origin": "local", "status": "failed"})
    lake.write(url, "finetune_runs", "x", runs)
    db = root / "warehouse.duckdb"
    load_tables(url, db)
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "fusion_vs_members", "--quiet",
         "--project-dir", str(REPO / "sql"), "--profiles-dir", str(REPO / "sql"), "--target-path",
         str(root / "target")],
        env={**os.environ, "STARTPOINT_WAREHOUSE": str(db)}, check=True,
    )
    con = duckdb.connect(str(db), read_only=True)
    cur = con.execute("select * from fusion_vs_members")
    out = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
    con.close()
    return out


def test_fused_vs_best_member_matches_a_recomputation(rows):
    assert len(rows) == 1
    row = rows[0]
    targets = ["t1", "t2", "t3", "t4"]
    mean = {m: np.array([np.mean(SCORES[m][t]) for t in targets]) for m in (BASE, A, B, FUSED)}
    best = max((A, B), key=lambda m: mean[m].mean())
    assert best == B and row["best_member"] == B
    diff = mean[FUSED] - mean[B]
    half = stats.t.ppf(0.975, len(targets) - 1) * diff.std(ddof=1) / np.sqrt(len(targets))
    assert row["model_id"] == FUSED and row["n_members"] == 2 and list(row["members"]) == [B, A]
    assert row["n_targets"] == 4
    assert row["fused_mean_score"] == pytest.approx(mean[FUSED].mean())
    assert row["best_member_mean_score"] == pytest.approx(mean[B].mean())
    assert row["diff_mean"] == pytest.approx(diff.mean())
    assert row["diff_low"] == pytest.approx(diff.mean() - half, abs=2e-3)
    assert row["diff_high"] == pytest.approx(diff.mean() + half, abs=2e-3)
    assert row["n_fused_better"] == int((diff > 0).sum())
    vs_mean = mean[FUSED] - (mean[A] + mean[B]) / 2
    assert row["diff_vs_members_mean"] == pytest.approx(vs_mean.mean())
    assert row["gain_over_pretrained"] == pytest.approx((mean[FUSED] - mean[BASE]).mean())
