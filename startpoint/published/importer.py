"""Write a read published-results folder into the lake, replacing the previous import as a whole."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from startpoint import lake
from startpoint.published.reader import FileCounts, ImportedFolder, read_folder

PREFIX = "published"


def _slug(architecture: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", architecture)


def import_folder(folder: Path, lake_url: str) -> ImportedFolder:
    """Read everything first (a bad file raises before anything is written), then write one file per
    architecture and table, then remove files of an earlier import that this one did not rewrite."""
    imported = read_folder(folder)
    before = {t: set(lake.list_files(lake_url, t, PREFIX)) for t in ("hub_models", "finetune_runs", "probe_scores",
                                                                     "rejected_rows", "datasets")}
    written: set[str] = set()
    for arch, result in imported.architectures.items():
        rel = f"{PREFIX}/{_slug(arch)}"
        written.add(lake.write(lake_url, "hub_models", rel, result.hub_models))
        written.add(lake.write(lake_url, "finetune_runs", rel, result.finetune_runs))
        written.add(lake.write(lake_url, "probe_scores", rel, result.probe_scores))
        written.add(lake.write(lake_url, "rejected_rows", rel, result.rejected_rows))
    written.add(lake.write(lake_url, "rejected_rows", f"{PREFIX}/_catalog", imported.catalog_rejected))
    written.add(lake.write(lake_url, "datasets", f"{PREFIX}/targets", imported.datasets))
    stale = set().union(*before.values()) - written
    lake.remove(lake_url, sorted(stale))
    return imported


def counts_table(imported: ImportedFolder) -> list[FileCounts]:
    counts = [c for r in imported.architectures.values() for c in r.counts]
    if imported.catalog_counts:
        counts.append(imported.catalog_counts)
    return counts


def counts_markdown(imported: ImportedFolder) -> str:
    from startpoint.tables import markdown_table

    rows = [asdict(c) for c in counts_table(imported)]
    cols = list(rows[0])
    return markdown_table(cols, [tuple(str(r[c]) for c in cols) for r in rows])
