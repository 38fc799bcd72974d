"""The static site on the fixture warehouse: pages for every architecture, model and target, escaped ids,
numbers that match the warehouse, and clear errors for a warehouse without the SQL models."""

from __future__ import annotations

from html import escape

import duckdb
import pytest

from startpoint.site import SiteDataError, build_site
from startpoint.site.paths import SitePaths, assign_slugs, base_slug

from product_fixture import FLAGGED_MODEL, HOSTILE_MODEL, TARGETS, build


@pytest.fixture()
def warehouse(tmp_path):
    return build(tmp_path / "warehouse.duckdb")


def arch_href(arch: str) -> str:
    """The page of an architecture: its readable name (the fixture's architectures need no suffix)."""
    return f"arch/{arch}.html"


def test_every_page_is_written(tmp_path, warehouse):
    progress: list[str] = []
    summary = build_site(warehouse, tmp_path / "site", progress=progress.append)
    site = summary.out_dir
    assert summary.architectures == ["all-MiniLM-L6-v2", "roberta-base"]
    assert summary.models == 2 * 9 and summary.targets == 2 * len(TARGETS)
    assert summary.pages == 1 + 2 * 2 + summary.models + summary.targets  # index, arch and matrix pages, ...
    assert len(list(site.rglob("*.html"))) == summary.pages
    for arch in summary.architectures:
        assert (site / arch_href(arch)).is_file() and (site / f"matrix/{arch}.html").is_file()
        assert summary.paths.arch(arch) == arch_href(arch)
        for ds in TARGETS:
            assert (site / f"target/{arch}/{ds}.html").is_file()
        for model in (HOSTILE_MODEL, FLAGGED_MODEL):
            assert (site / summary.paths.model(arch, model)).is_file()
        assert (site / f"model/{arch}/org0--{arch}-inter-0.html").is_file()  # org/name -> org--name
    assert (site / "site.js").is_file()
    assert any("model pages" in p for p in progress)


def test_untrusted_names_are_escaped(tmp_path, warehouse):
    site = build_site(warehouse, tmp_path / "site").out_dir
    for path in site.rglob("*.html"):
        text = path.read_text()
        root = "../" * (len(path.relative_to(site).parts) - 1)
        # the one script is the site's own file; no id ever opens another
        assert text.count("<script") == 1 and f"<script src='{root}site.js' defer></script>" in text, path
    arch_page = (site / arch_href("roberta-base")).read_text()
    assert "evil/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in arch_page


def test_numbers_match_the_warehouse(tmp_path, warehouse):
    summary = build_site(warehouse, tmp_path / "site")
    site = summary.out_dir
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
    assert escape(reason) in arch_page
    assert "<svg" in arch_page and "interaction" in arch_page
    g = con.execute(
        "select gain from gains where architecture = 'roberta-base' and model_id = ? and dataset_id = 'copa'", [best]
    ).fetchone()[0]
    assert f"{g:+.2f}" in (site / summary.paths.model("roberta-base", best)).read_text()
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


def test_slugs_are_readable_distinct_and_safe():
    ids = ["a/b", "a--b", "a b", "a?b", "../../etc/passwd", HOSTILE_MODEL, "x" * 200, "org/" + "y" * 200]
    slugs = assign_slugs(ids)
    assert len({s.lower() for s in slugs.values()}) == len(ids)  # distinct even on a case-insensitive disk
    assert all("/" not in s and not s.startswith(".") and len(s) <= 150 for s in slugs.values())
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for s in slugs.values())
    # readable where nothing collides; a suffix only on a real collision, never on the exact spelling
    assert sorted([slugs["a/b"], slugs["a--b"]])[0] == "a--b" and max(slugs["a/b"], slugs["a--b"]).startswith("a--b-")
    assert slugs["../../etc/passwd"] == "etc--passwd"
    cased = assign_slugs(["Org/A", "org/a"])
    assert cased["Org/A"] == "Org--A" and cased["org/a"].startswith("org--a-")  # one file each on any disk
    assert slugs["a b"] == "a-b" and slugs["a?b"].startswith("a-b-")
    # stable: the same set in another order, or a later id that collides with none, changes no name
    assert assign_slugs(reversed(ids)) == slugs
    assert {k: v for k, v in assign_slugs([*ids, "new/model"]).items() if k in slugs} == slugs
    paths = SitePaths(["roberta-base"], {"roberta-base": ["textattack/roberta-base-MNLI"]}, {"roberta-base": ["rte"]})
    assert paths.model("roberta-base", "textattack/roberta-base-MNLI") == \
        "model/roberta-base/textattack--roberta-base-MNLI.html"
    assert paths.arch("roberta-base") == "arch/roberta-base.html" and paths.matrix("roberta-base") == \
        "matrix/roberta-base.html" and paths.target("roberta-base", "rte") == "target/roberta-base/rte.html"
    assert base_slug("...") == "x"


def test_warehouse_without_sql_models_is_a_clear_error(tmp_path):
    path = tmp_path / "bare.duckdb"
    duckdb.connect(str(path)).execute("create table hub_models(model_id varchar)").close()
    with pytest.raises(SiteDataError, match="leaderboard.*make run"):
        build_site(path, tmp_path / "site")


def _ranking_table(page: str) -> str:
    return page.split('<table class="ranking"', 1)[1].split(">", 1)[1].split("</table>", 1)[0]


def test_ranking_shows_the_gain_on_one_scale_reliability_and_ties_with_rank_1(tmp_path, warehouse):
    summary = build_site(warehouse, tmp_path / "site")
    site = summary.out_dir
    con = duckdb.connect(str(warehouse), read_only=True)
    for arch in ("roberta-base", "all-MiniLM-L6-v2"):
        page = (site / arch_href(arch)).read_text()
        rows = con.execute(
            """select rank, mean_gain, ci_low, ci_high, p_better_than_rank1, tied, reliability, is_pretrained,
                      ranking_score
               from leaderboard where architecture = ? and rank is not null order by rank""",
            [arch],
        ).fetchall()
        reliability = rows[0][6]
        assert f"<h2>Ranking · reliability {reliability:.2f}: {reliability:.0%} of the spread" in page
        ranking = _ranking_table(page)
        for th in ("gain, points [95% CI]", "win rate", "P(better than #1)", "tied with #1"):
            assert f"<th>{th}</th>" in ranking
        assert "posterior" not in ranking.lower() and "ranking_score" not in ranking
        body_rows = ranking.split("<tbody>", 1)[1].split("</tr>")[:-1]
        assert len(body_rows) == len(rows)
        scores = [r[8] for r in rows]
        assert scores == sorted(scores, reverse=True)  # the rank follows the ranking score
        assert sum(1 for r in rows if r[7]) == 1  # the pretrained model is a row of the ranking
        for html_row, (rank, mean, mlow, mhigh, p, tied, _, pretrained, _) in zip(body_rows, rows):
            assert f"<td class='num'>{rank}</td>" in html_row
            assert f"{mean:+.2f} <span class='note'>[{mlow:+.2f}, {mhigh:+.2f}]</span>" in html_row
            assert ("(pretrained: stay)" in html_row) == pretrained
            if rank == 1:
                assert p is None
            else:
                shown = "<1%" if p < 0.005 else ">99%" if p > 0.995 else f"{p:.0%}"
                assert f"<td class='num'>{escape(shown)}</td>" in html_row
            assert ("<td>≈ #1</td>" in html_row) == bool(tied)
            assert ('class="tied"' in html_row) == bool(tied)
        n_tied = sum(1 for r in rows if r[0] > 1 and r[5])
        assert f"{n_tied} of the {len(rows) - 1} other ranked rows cannot be told apart from #1 on these targets" in page
        assert "The order follows a ranking score, not a gain" in page
    # the fixture ties one model with #1 in one architecture and none in the other
    assert con.execute("select count(*) from leaderboard where tied and rank > 1").fetchone()[0] >= 1
    best = con.execute(
        "select model_id, mean_gain, ci_low, ci_high, reliability from leaderboard "
        "where architecture = 'roberta-base' and rank = 1"
    ).fetchone()
    index = (site / "index.html").read_text()
    assert f"{best[1]:+.2f} <span class='note'>[{best[2]:+.2f}, {best[3]:+.2f}]</span>" in index
    assert f"<td class='num'>{best[4]:.2f}</td>" in index
    model = (site / summary.paths.model("roberta-base", best[0])).read_text()
    assert f"mean gain {best[1]:+.2f} [{best[2]:+.2f}, {best[3]:+.2f}]" in model
    assert f"reliability {best[4]:.2f}" in model
    con.close()


def test_a_ranking_whose_best_row_is_the_pretrained_model_says_stay(tmp_path, warehouse):
    con = duckdb.connect(str(warehouse))
    con.execute("update leaderboard set rank = rank + 1 where architecture = 'roberta-base' and not is_pretrained "
                "and rank is not null")
    con.execute("update leaderboard set rank = 1 where architecture = 'roberta-base' and is_pretrained")
    con.execute("update leaderboard set best_is_pretrained = true, order_has_evidence = false, tied = true "
                "where architecture = 'roberta-base'")
    con.close()
    site = build_site(warehouse, tmp_path / "site").out_dir
    page = (site / arch_href("roberta-base")).read_text()
    assert "No candidate ranks above the pretrained model: start from the pretrained model (stay)." in page
    assert "the order carries no evidence" in page
    index = (site / "index.html").read_text()
    assert "roberta-base (pretrained: stay)" in index


def test_variance_shares_with_intervals_and_the_old_columns(tmp_path, warehouse):
    site = build_site(warehouse, tmp_path / "new").out_dir
    page = (site / arch_href("roberta-base")).read_text()
    assert "<th>share [95%]</th>" in page and "0.300 [0.180, 0.450]" in page
    assert "7 models × 9 targets; intervals from 3 bootstrap replicates." in page
    con = duckdb.connect(str(warehouse))
    con.execute("drop table variance_decomposition")
    con.execute("create table variance_decomposition(architecture varchar, component varchar, sum_sq double, "
                "fraction double, n_models bigint, n_targets bigint)")
    con.execute("insert into variance_decomposition values ('roberta-base', 'base', 300.0, 0.3, 7, 9), "
                "('roberta-base', 'noise', 700.0, 0.7, 7, 9)")
    con.close()
    page = (build_site(warehouse, tmp_path / "old").out_dir / arch_href("roberta-base")).read_text()
    assert "<th>share</th>" in page and "<th>sum of squares</th>" in page and "0.300" in page


def test_a_leaderboard_without_the_ranking_columns_still_builds(tmp_path, warehouse):
    con = duckdb.connect(str(warehouse))
    for column in ("ranking_score", "reliability", "p_better_than_rank1", "tied_with_rank1", "tied", "is_pretrained",
                   "order_has_evidence", "best_is_pretrained", "n_collapsed"):
        con.execute(f"alter table leaderboard drop column {column}")
    con.execute("drop table ranking_reliability")
    con.close()
    site = build_site(warehouse, tmp_path / "site").out_dir
    page = (site / arch_href("roberta-base")).read_text()
    assert "gain, points [95% CI]" in _ranking_table(page) and "Gain of the top" in page


def test_cli_leaderboard_shows_the_gain_the_stay_row_and_ties(tmp_path, warehouse, monkeypatch, capsys):
    from pipelines.cli import main

    home = tmp_path / "home"
    home.mkdir()
    warehouse.rename(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("update leaderboard set model_id = 'org/evil\x1b[2J\r|name' where rank = 3")
    rows = con.execute(
        """select architecture, rank, mean_gain, ci_low, ci_high, tied, reliability, p_better_than_rank1,
                  is_pretrained
           from leaderboard where rank is not null order by architecture, rank"""
    ).fetchall()
    con.close()
    assert main(["leaderboard", "--top", "10"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out  # no raw control characters reach the terminal
    assert "org/evil\\x1b[2J\\r\\|name" in out
    assert "posterior" not in out
    sections = {part.split("  (", 1)[0]: part for part in out.split("\n## ")[1:]}
    assert sorted(sections) == ["all-MiniLM-L6-v2", "roberta-base"]
    for arch, rank, mean, low, high, tied, rel, p, pretrained in rows:
        assert "(pretrained average" in sections[arch] and f"reliability {rel:.2f}: " in sections[arch]
        line = next(x for x in sections[arch].splitlines() if x.startswith(f"| {rank} |"))
        assert f"{mean:+.2f} ({low:+.2f}..{high:+.2f})" in line
        assert (f"| {rank} | ≈1 |" in line) == bool(tied)
        assert ("(pretrained: stay)" in line) == pretrained
        if rank > 1:
            assert ("<1%" if p < 0.005 else ">99%" if p > 0.995 else f"{p:.0%}") in line
    assert "cannot be told apart from #1 on these targets" in out


def test_the_reliability_sentence_reads_the_top_figure_when_the_warehouse_has_it(tmp_path, warehouse):
    from startpoint.warehouse.reliability import top_reliability_sentence

    con = duckdb.connect(str(warehouse))
    con.execute("""create table top_reliability as select 'roberta-base' as architecture, 8 as n_models,
                   0.07 as p_rank1_in_top10, 0.0 as p_rank1_in_top10_low, 0.4 as p_rank1_in_top10_high,
                   0.3 as top10_overlap""")
    row = dict(zip(["architecture", "n_models", "p_rank1_in_top10", "p_rank1_in_top10_low",
                    "p_rank1_in_top10_high", "top10_overlap"],
                   con.execute("select * from top_reliability").fetchone()))
    reliability, = con.execute("select reliability from ranking_reliability where architecture = 'roberta-base'"
                               ).fetchone()
    con.close()
    page = (build_site(warehouse, tmp_path / "site").out_dir / arch_href("roberta-base")).read_text()
    sentence = top_reliability_sentence(row)
    assert "not stable" in sentence
    assert f"<h2>Ranking · {escape(sentence)} All models: reliability {reliability:.2f}" in page
    other = (tmp_path / "site" / arch_href("all-MiniLM-L6-v2")).read_text()
    assert "<h2>Ranking · reliability" in other  # no top figure for it: the all-model sentence alone


def test_cli_and_previews_say_stay_when_the_pretrained_model_ranks_first(tmp_path, warehouse, monkeypatch, capsys):
    from assets.previews import preview_metadata
    from assets.resources import WarehouseResource
    from pipelines.cli import main

    con = duckdb.connect(str(warehouse))
    con.execute("update leaderboard set rank = rank + 1 where architecture = 'roberta-base' and not is_pretrained "
                "and rank is not null")
    con.execute("update leaderboard set rank = 1 where architecture = 'roberta-base' and is_pretrained")
    con.execute("update leaderboard set best_is_pretrained = true where architecture = 'roberta-base'")
    con.close()
    stay = "No candidate ranks above the pretrained model: start from the pretrained model (stay)."
    preview = preview_metadata("leaderboard", WarehouseResource(path=str(warehouse)))["preview"].value
    assert stay.replace("(", "\\(").replace(")", "\\)") in preview or stay in preview
    home = tmp_path / "home"
    home.mkdir()
    warehouse.rename(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    assert main(["leaderboard", "--architecture", "roberta-base"]) == 0
    out = capsys.readouterr().out
    assert stay in out and "| 1 |" in out and "(pretrained: stay)" in out


def _model_page(site, summary, arch: str, model_id: str) -> str:
    return (site / summary.paths.model(arch, model_id)).read_text()


def test_model_pages_link_the_hub_and_say_how_to_use_the_model_from_the_catalog(tmp_path, warehouse):
    """The "how to use" block reads hub_models: a Hub catalog row's license, downloads, size, date and verdict; a
    published row's own size and date with "not in the catalog" for the rest; a local or fused model (or an id the
    Hub could not hold) gets no Hub link and no from_pretrained line."""
    arch = "roberta-base"
    hub_model, refused, local, fused = (f"org{i}/{arch}-inter-{i}" for i in range(4))
    con = duckdb.connect(str(warehouse))
    for column, kind in (("license", "varchar"), ("downloads", "bigint"), ("status", "varchar"),
                         ("refusal_reason", "varchar"), ("has_safetensors", "boolean"), ("download_bytes", "bigint")):
        con.execute(f"alter table hub_models add column {column} {kind}")
    con.execute("""update hub_models set source = 'hub', license = 'apache-2.0', downloads = 12345, status = 'accepted',
                   has_safetensors = true, download_bytes = 498000000, last_modified = '2024-03-05 10:00:00+00'
                   where model_id = ? and architecture = ?""", [hub_model, arch])
    con.execute("""update hub_models set source = 'hub', status = 'refused', refusal_reason = 'pickle weights only'
                   where model_id = ? and architecture = ?""", [refused, arch])
    con.execute("update hub_models set source = 'local' where model_id = ? and architecture = ?", [local, arch])
    con.execute("update hub_models set role = 'fused' where model_id = ? and architecture = ?", [fused, arch])
    n_params, = con.execute("select n_params from hub_models where model_id = ? and architecture = ?",
                            [hub_model, arch]).fetchone()
    con.close()
    summary = build_site(warehouse, tmp_path / "site")
    site = summary.out_dir

    page = _model_page(site, summary, arch, hub_model)
    assert f'<a href="https://huggingface.co/{hub_model}">on Hugging Face</a>' in page
    assert f'from_pretrained(\n    "{hub_model}", num_labels=n_labels, use_safetensors=True)' in page
    assert "<dt>License</dt><dd>apache-2.0</dd>" in page and "<dt>Downloads</dt><dd>12,345</dd>" in page
    assert f"<dt>Size</dt><dd>{n_params / 1e6:.1f}M parameters, 498 MB of weights</dd>" in page
    assert "<dt>Last modified</dt><dd>2024-03-05</dd>" in page
    assert "<dt>Safe loading</dt><dd>accepted by startpoint&#x27;s loading policy: safetensors weights" in page

    page = _model_page(site, summary, arch, refused)
    assert "<dt>Safe loading</dt><dd>refused: pickle weights only</dd>" in page
    assert "<dt>License</dt><dd>not declared on the Hub</dd>" in page  # a catalog row without a license

    published = _model_page(site, summary, arch, "org4/roberta-base-inter-4")  # a published row: no Hub check
    assert "<dt>License</dt><dd>not in the catalog</dd>" in published
    assert "<dt>Downloads</dt><dd>not in the catalog</dd>" in published
    assert "<dt>Last modified</dt><dd>2023-02-01</dd>" in published  # the published catalog's own date
    assert "<dt>Safe loading</dt><dd>not checked: not in the Hub catalog" in published
    assert "https://huggingface.co/org4/roberta-base-inter-4" in published

    for model_id, kind in ((local, "a local model"), (fused, "a fused model"),
                           (HOSTILE_MODEL, "its id is not a Hugging Face repo id")):
        page = _model_page(site, summary, arch, model_id)
        assert "huggingface.co" not in page and "from_pretrained" not in page, model_id
        assert f"not on the Hugging Face Hub: {kind}" in page, model_id
    pretrained = _model_page(site, summary, arch, "roberta-base")  # the Hub's current id of the pretrained model
    assert '<a href="https://huggingface.co/FacebookAI/roberta-base">on Hugging Face</a>' in pretrained
    ranking = (site / arch_href(arch)).read_text()
    assert f"href=\"https://huggingface.co/{hub_model}\"" in ranking and f"huggingface.co/{local}" not in ranking


def test_the_gain_matrix_prints_the_gains_and_a_scale_sql_reproduces(tmp_path, warehouse):
    summary = build_site(warehouse, tmp_path / "site")
    con = duckdb.connect(str(warehouse), read_only=True)
    for arch in summary.architectures:
        page = (summary.out_dir / summary.paths.matrix(arch)).read_text()
        scale, = con.execute(
            """select quantile_cont(abs(gain), 0.95) from gains g
               where architecture = ? and gain is not null and model_id not in
                     (select model_id from leaderboard where architecture = ? and flagged)""", [arch, arch]
        ).fetchone()
        assert f"data-scale='{max(scale, 0.5)}'" in page
        assert f"Colours saturate at ±{max(scale, 0.5):.1f} points" in page
        body = page.split('<table class="matrix"', 1)[1]
        rows = body.split("<tbody>", 1)[1].split("</tr>")[:-1]
        n_models, = con.execute("select count(distinct model_id) from gains where architecture = ? and gain is not null",
                                [arch]).fetchone()
        assert len(rows) == n_models
        for model_id, dataset_id, gain in con.execute(
                "select model_id, dataset_id, gain from gains where architecture = ? and dataset_id = 'rte'",
                [arch]).fetchall():
            row = next(r for r in rows if f">{escape(model_id)}" in r)
            assert f">{gain:+.1f}</td>" in row, (model_id, dataset_id)
    con.close()


def test_one_leaderboard_reader_gives_every_medium_the_same_rows_and_sentence(tmp_path, warehouse, monkeypatch,
                                                                               capsys):
    """startpoint.warehouse.leaderboard: rows and per-architecture counts as SQL computes them, typed NULLs for the
    columns an older warehouse lacks, and one reliability sentence that the site, the CLI and the preview print."""
    from assets.previews import preview_metadata
    from assets.resources import WarehouseResource
    from pipelines.cli import main
    from startpoint.tables import markdown_text
    from startpoint.warehouse.leaderboard import (
        LeaderboardMissing, read_leaderboard, read_reliability, reliability_text,
    )

    con = duckdb.connect(str(warehouse))
    board = read_leaderboard(con)
    assert board.height == con.execute("select count(*) from leaderboard").fetchone()[0]
    for arch, n_ranked, n_tied, pretrained_rank in con.execute(
            """select architecture, count(rank), count(*) filter (where tied and rank > 1),
                      min(rank) filter (where is_pretrained) from leaderboard group by all""").fetchall():
        rows = board.filter(board["architecture"] == arch)
        assert set(rows["n_ranked"]) == {n_ranked} and set(rows["n_tied"]) == {n_tied}
        assert set(rows["pretrained_rank"]) == {pretrained_rank}
        ranks = rows["rank"].to_list()
        assert ranks[:n_ranked] == sorted(ranks[:n_ranked]) and ranks[n_ranked:] == [None] * (len(ranks) - n_ranked)
    top = read_leaderboard(con, architecture="roberta-base", top=3)
    assert top["rank"].to_list() == [1, 2, 3] and set(top["n_ranked"]) == {n for n in board.filter(
        board["architecture"] == "roberta-base")["n_ranked"]}  # counts over the whole board, not the top 3
    sentence = reliability_text(read_reliability(con)["roberta-base"])
    con.execute("alter table leaderboard drop column p_better_than_rank1")
    assert read_leaderboard(con)["p_better_than_rank1"].null_count() == board.height  # typed NULL, same rows
    con.execute("drop table ranking_reliability")
    rel = read_reliability(con)["roberta-base"]  # the leaderboard's column stands in
    assert rel.n_targets is None and reliability_text(rel).startswith(sentence.split(" over ")[0])
    con.close()
    bare = duckdb.connect(str(tmp_path / "bare.duckdb"))
    with pytest.raises(LeaderboardMissing, match="make run"):
        read_leaderboard(bare)
    bare.close()

    fresh = build(tmp_path / "fresh.duckdb")
    page = (build_site(fresh, tmp_path / "site").out_dir / arch_href("roberta-base")).read_text()
    assert f"<h2>Ranking · {escape(sentence)}</h2>" in page
    preview = preview_metadata("leaderboard", WarehouseResource(path=str(fresh)))["preview"].value
    assert f"**roberta-base** ({markdown_text(sentence)})" in preview
    home = tmp_path / "home"
    home.mkdir()
    fresh.rename(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    assert main(["leaderboard", "--architecture", "roberta-base"]) == 0
    assert f"; {sentence})" in capsys.readouterr().out
