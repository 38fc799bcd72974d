"""The static site on the fixture warehouse: pages for every architecture, model and target, escaped ids,
numbers that match the warehouse, and clear errors for a warehouse without the SQL models."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.site import SiteDataError, build_site
from pipelines.site.build import arch_href, model_href, target_href
from pipelines.site.html import slug
from product_fixture import FLAGGED_MODEL, HOSTILE_MODEL, TARGETS, build


@pytest.fixture()
def warehouse(tmp_path):
    return build(tmp_path / "warehouse.duckdb")


def test_every_page_is_written(tmp_path, warehouse):
    progress: list[str] = []
    summary = build_site(warehouse, tmp_path / "site", progress=progress.append)
    site = summary.out_dir
    assert summary.architectures == ["all-MiniLM-L6-v2", "roberta-base"]
    assert summary.models == 2 * 8 and summary.targets == 2 * len(TARGETS)
    assert summary.pages == 1 + 2 + summary.models + summary.targets
    assert len(list(site.rglob("*.html"))) == summary.pages
    for arch in summary.architectures:
        assert (site / arch_href(arch)).is_file()
        for ds in TARGETS:
            assert (site / target_href(arch, ds)).is_file()
        for model in (HOSTILE_MODEL, FLAGGED_MODEL):
            assert (site / model_href(arch, model)).is_file()
    assert any("model pages" in p for p in progress)


def test_untrusted_names_are_escaped(tmp_path, warehouse):
    site = build_site(warehouse, tmp_path / "site").out_dir
    for path in site.rglob("*.html"):
        text = path.read_text()
        assert "<script" not in text, path
    arch_page = (site / arch_href("roberta-base")).read_text()
    assert "evil/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in arch_page


def test_numbers_match_the_warehouse(tmp_path, warehouse):
    site = build_site(warehouse, tmp_path / "site").out_dir
    con = duckdb.connect(str(warehouse), read_only=True)
    best, gain, low, high, pretrained = con.execute(
        """select model_id, mean_gain, ci_low, ci_high, pretrained_avg from leaderboard
           where architecture = 'roberta-base' and rank = 1"""
    ).fetchone()
    index = (site / "index.html").read_text()
    assert best in index and f"{gain:+.2f}" in index and f"[{low:+.2f}, {high:+.2f}]" in index
    assert f"{pretrained:.2f}" in index
    reason = con.execute(
        "select flag_reason from leaderboard where model_id = ? and architecture = 'roberta-base'", [FLAGGED_MODEL]
    ).fetchone()[0]
    arch_page = (site / arch_href("roberta-base")).read_text()
    assert reason in arch_page
    assert "<svg" in arch_page and "interaction" in arch_page
    g = con.execute(
        "select gain from gains where architecture = 'roberta-base' and model_id = ? and dataset_id = 'copa'", [best]
    ).fetchone()[0]
    assert f"{g:+.2f}" in (site / model_href("roberta-base", best)).read_text()
    con.close()


def test_rebuild_replaces_site_but_never_a_foreign_folder(tmp_path, warehouse):
    out = tmp_path / "site"
    build_site(warehouse, out)
    (out / "stale.html").write_text("old")
    build_site(warehouse, out)
    assert not (out / "stale.html").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a startpoint site"):
        build_site(warehouse, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_slugs_are_distinct_and_safe():
    ids = ["a/b", "a-b", "a b", "../../etc/passwd", HOSTILE_MODEL]
    slugs = [slug(i) for i in ids]
    assert len(set(slugs)) == len(ids)
    assert all("/" not in s and not s.startswith(".") for s in slugs)


def test_warehouse_without_sql_models_is_a_clear_error(tmp_path):
    path = tmp_path / "bare.duckdb"
    duckdb.connect(str(path)).execute("create table hub_models(model_id varchar)").close()
    with pytest.raises(SiteDataError, match="leaderboard.*make run"):
        build_site(path, tmp_path / "site")


def test_robust_score_column_is_shown_when_the_leaderboard_has_it(tmp_path, warehouse):
    plain = build_site(warehouse, tmp_path / "plain").out_dir
    assert "robust score" not in (plain / arch_href("roberta-base")).read_text()
    con = duckdb.connect(str(warehouse))
    con.execute("alter table leaderboard add column robust_score double")
    con.execute("update leaderboard set robust_score = 4.321 where rank = 1")
    con.close()
    site = build_site(warehouse, tmp_path / "site").out_dir
    page = (site / arch_href("roberta-base")).read_text()
    assert "<th>robust score</th>" in page and "+4.32" in page
