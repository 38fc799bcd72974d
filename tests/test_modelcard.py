"""Model-card export on the fixture warehouse: top candidates per architecture, valid model-index YAML whose values
match the warehouse's gains table, Hub dataset ids, no link to a local path, the mean gain as the gain a user reads,
and the pretrained model as a ranked row ("stay") that gets no card."""

from __future__ import annotations

import re

import duckdb
import pytest
import yaml

from startpoint.modelcard import export_model_cards
from startpoint.modelcard.export import SITE_URL_ENV, public_site_url
from startpoint.published.hub_datasets import HUB_DATASETS, hub_dataset
from startpoint.published.targets import TARGETS

from product_fixture import FLAGGED_MODEL, HOSTILE_MODEL, build

SITE = "https://example.org/startpoint"
NO_HUB_DATASET = {"isear"}  # published targets with no canonical Hub dataset


@pytest.fixture()
def warehouse(tmp_path, monkeypatch):
    monkeypatch.delenv(SITE_URL_ENV, raising=False)
    return build(tmp_path / "warehouse.duckdb")


def _texts(summary) -> dict[str, str]:
    texts = {str(c.markdown_path): c.markdown_path.read_text() for c in summary.cards}
    texts |= {str(c.yaml_path): c.yaml_path.read_text() for c in summary.cards}
    texts[str(summary.index_path)] = summary.index_path.read_text()
    return texts


def _no_local_links(summary, *local_paths) -> None:
    """No file:// URI and no local path anywhere in the cards, the YAML or the index."""
    for name, text in _texts(summary).items():
        assert "file:" not in text.lower(), name
        for path in local_paths:
            assert str(path) not in text, (name, path)


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]).fetchall()}


def _new_schema(path, pretrained_rank: dict[str, int], no_evidence: tuple[str, ...] = ()) -> None:
    """The leaderboard as issue 17 makes it, from the fixture's: no posterior_* columns, a ranking_score, the
    pretrained model a ranked row (is_pretrained, mean gain 0) at `pretrained_rank[arch]`, `tied`, and
    `order_has_evidence` false for the architectures in `no_evidence` (every row of those tied)."""
    con = duckdb.connect(str(path))
    have = _columns(con, "leaderboard")

    def col(name: str, default: str) -> str:
        return name if name in have else f"{default} as {name}"

    tied_default = "coalesce(tied_with_rank1, false)" if "tied_with_rank1" in have else "false"
    con.execute(
        f"""create table new_leaderboard as
            select architecture, rank, model_id, avg_score, pretrained_avg, {col('ranking_score', 'mean_gain')},
                   mean_gain, ci_low, ci_high, win_rate, n_targets, flagged, flag_reason,
                   {col('is_pretrained', 'false')}, {col('tied', tied_default)}, {col('order_has_evidence', 'true')}
            from leaderboard"""
    )
    con.execute("delete from new_leaderboard where is_pretrained")
    con.execute("drop table leaderboard")
    con.execute("alter table new_leaderboard rename to leaderboard")
    for arch, rank in pretrained_rank.items():
        con.execute("update leaderboard set rank = rank + 1 where architecture = ? and rank >= ?", [arch, rank])
        pretrained = "sentence-transformers/all-MiniLM-L6-v2" if arch == "all-MiniLM-L6-v2" else arch
        con.execute(
            """insert into leaderboard
               select ?, ?, ?, any_value(pretrained_avg), any_value(pretrained_avg), 0.0, 0.0, null, null, null,
                      max(n_targets), false, null, true, false, true
               from leaderboard where architecture = ?""",
            [arch, rank, pretrained, arch],
        )
    if no_evidence:
        con.execute("update leaderboard set order_has_evidence = false, tied = true where list_contains(?, architecture)",
                    [list(no_evidence)])
    con.close()


def test_top_models_get_markdown_and_model_index(tmp_path, warehouse):
    summary = export_model_cards(warehouse, tmp_path / "cards", top=3, site_url=SITE)
    by_arch: dict[str, list] = {}
    for card in summary.cards:
        by_arch.setdefault(card.architecture, []).append(card)
    assert sorted(by_arch) == ["all-MiniLM-L6-v2", "roberta-base"]
    con = duckdb.connect(str(warehouse), read_only=True)
    have = _columns(con, "leaderboard")
    candidate = "not is_pretrained" if "is_pretrained" in have else "true"  # the pretrained row gets no card
    p_better = "p_better_than_rank1" if "p_better_than_rank1" in have else "null"
    for arch, cards in by_arch.items():
        expected = [r[0] for r in con.execute(
            f"""select model_id from leaderboard where architecture = ? and rank is not null and {candidate}
                order by rank limit 3""", [arch]
        ).fetchall()]
        assert [c.model_id for c in cards] == expected
        assert FLAGGED_MODEL not in expected
        for card in cards:
            meta = yaml.safe_load(card.yaml_path.read_text())
            entry = meta["model-index"][0]
            assert entry["name"] == card.model_id
            assert len(entry["results"]) == card.n_results == card.n_targets == 9  # every fixture target is on the Hub
            for result in entry["results"]:
                name = result["dataset"]["name"]
                want = con.execute(
                    "select score_mean from gains where architecture = ? and model_id = ? and dataset_id = ?",
                    [arch, card.model_id, name],
                ).fetchone()[0]
                assert result["metrics"][0]["value"] == pytest.approx(want, abs=0.006)
                assert result["source"]["url"].startswith(f"{SITE}/model/")
                assert result["task"]["type"] == "text-classification"
                hub = HUB_DATASETS[name]
                assert result["dataset"]["type"] == hub.type and result["dataset"].get("config") == hub.config
            by_name = {r["dataset"]["name"]: r for r in entry["results"]}
            assert by_name["stsb"]["metrics"][0]["type"] == "spearmanr"  # the Hub's metric id
            assert by_name["stsb"]["dataset"] == {"type": "glue", "name": "stsb", "config": "stsb"}
            assert by_name["cb"]["dataset"] == {"type": "super_glue", "name": "cb", "config": "cb"}
            assert by_name["tweet_ev_irony"]["dataset"] == {"type": "tweet_eval", "name": "tweet_ev_irony",
                                                            "config": "irony"}
            assert by_name["ag_news"]["dataset"] == {"type": "ag_news", "name": "ag_news"}
            text = card.markdown_path.read_text()
            front = yaml.safe_load(text.split("---\n")[1])
            assert front == meta
            assert f"Rank **{card.rank}**" in text
            assert f"[startpoint leaderboard]({SITE}/model/" in text
            gain, low, high, n_targets, p = con.execute(
                f"""select mean_gain, ci_low, ci_high, n_targets, {p_better}
                    from leaderboard where architecture = ? and model_id = ?""",
                [arch, card.model_id],
            ).fetchone()
            # the gain a user reads: the mean over the model's cells with its interval; no posterior anywhere
            assert (f"Over {n_targets} targets, finetuning from this model gains **{gain:+.2f} points** on average "
                    f"over the pretrained model (95% interval {low:+.2f}..{high:+.2f})") in text
            assert "posterior" not in text.lower()
            assert ("expected to do as well or better" in text) == card.below_pretrained
            if card.rank > 1 and p is not None:
                assert f"chance of being better than rank 1: {p:.0%}" in text
    con.close()
    assert summary.index_path.read_text().count("\n- ") + 1 >= 6
    _no_local_links(summary, warehouse.parent)


def test_without_a_site_url_the_cards_link_nowhere(tmp_path, warehouse):
    summary = export_model_cards(warehouse, tmp_path / "cards", top=3)
    assert summary.cards and summary.site_url is None
    _no_local_links(summary, warehouse.parent, tmp_path)
    for card in summary.cards:
        text = card.markdown_path.read_text()
        assert "](" not in text and "in the startpoint leaderboard" in text  # plain text, no link
        for result in yaml.safe_load(card.yaml_path.read_text())["model-index"][0]["results"]:
            assert "source" not in result  # a source name needs a url: none at all


def test_the_site_url_comes_from_the_environment_and_local_ones_are_refused(tmp_path, warehouse, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv(SITE_URL_ENV, "https://example.net/sp/")
    home = warehouse.parent
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    assert main(["model-card", "--out", str(tmp_path / "cards")]) == 0
    card = next((tmp_path / "cards").rglob("*.model-index.yaml"))
    assert yaml.safe_load(card.read_text())["model-index"][0]["results"][0]["source"]["url"].startswith(
        "https://example.net/sp/model/")
    assert main(["model-card", "--out", str(tmp_path / "plain"), "--site-url", ""]) == 0  # blank: no link
    assert "no site links" in capsys.readouterr().out
    assert not any("example.net" in p.read_text() for p in (tmp_path / "plain").rglob("*.*"))
    for local in ("file:///tmp/site", str(tmp_path / "site"), "site/", "ftp://example.org/x", "https://"):
        assert main(["model-card", "--out", str(tmp_path / "refused"), "--site-url", local]) == 2
        assert "--site-url" in capsys.readouterr().err
        with pytest.raises(ValueError, match="--site-url"):
            export_model_cards(warehouse, tmp_path / "refused", site_url=local)
    assert not (tmp_path / "refused").exists()
    assert public_site_url("https://Example.org/a b/#x") == "https://Example.org/a%20b/%23x"
    assert public_site_url("  ") is None


def test_hub_dataset_ids_of_the_published_targets():
    assert set(HUB_DATASETS) == set(TARGETS) - NO_HUB_DATASET
    for target in NO_HUB_DATASET:
        assert hub_dataset(target) is None
    assert hub_dataset("mnli") == ("glue", "mnli")
    assert hub_dataset("copa") == ("super_glue", "copa")
    assert hub_dataset("tweet_ev_offensive") == ("tweet_eval", "offensive")
    assert hub_dataset("ag_news") == ("ag_news", None)
    assert hub_dataset("sst_5bins") == ("sst", "default")
    for hub in HUB_DATASETS.values():  # well-formed Hub ids (name or owner/name), never a startpoint id
        assert re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", hub.type), hub
    # a startpoint `hf:` id names its Hub dataset; the offline suite's local datasets and files have none
    assert hub_dataset("hf:nyu-mll/glue:sst2") == ("nyu-mll/glue", "sst2")
    assert hub_dataset("hf:stanfordnlp/imdb") == ("stanfordnlp/imdb", None)
    for local in ("fine_foods", "tweets_sentiment", "debian_section", "hf:./data", "hf:/tmp/x", "hf:a/b/c",
                  "file:reviews.csv", "reviews.csv", ""):
        assert hub_dataset(local) is None, local


def test_targets_without_a_hub_dataset_stay_out_of_the_model_index(tmp_path, warehouse):
    con = duckdb.connect(str(warehouse))
    top = con.execute("select architecture, model_id from leaderboard where rank = 1 order by architecture").fetchone()
    for ds in ("fine_foods", "isear", "hf:stanfordnlp/imdb"):
        con.execute("insert into gains values (?, ?, ?, 2, 70.0, 68.0, 0.5, 2.0, 0.4)", [*top, ds])
    con.close()
    summary = export_model_cards(warehouse, tmp_path / "cards", top=1, site_url=SITE)
    card = next(c for c in summary.cards if c.model_id == top[1])
    results = yaml.safe_load(card.yaml_path.read_text())["model-index"][0]["results"]
    names = {r["dataset"]["name"]: r["dataset"] for r in results}
    assert "fine_foods" not in names and "isear" not in names  # no made-up id, and no result without a type
    assert names["hf:stanfordnlp/imdb"] == {"type": "stanfordnlp/imdb", "name": "hf:stanfordnlp/imdb"}
    assert card.n_results == 10 and card.n_targets == 12
    table = card.markdown_path.read_text()
    assert "| fine\\_foods |" in table and "| isear |" in table  # still in the card's table
    assert all(r["dataset"].get("type") for r in results)


def test_model_index_validates_with_huggingface_hub(tmp_path, warehouse):
    repocard_data = pytest.importorskip("huggingface_hub.repocard_data")
    for site_url in (SITE, None):
        summary = export_model_cards(warehouse, tmp_path / f"cards-{bool(site_url)}", top=2, site_url=site_url)
        for card in summary.cards:
            meta = yaml.safe_load(card.yaml_path.read_text())
            name, results = repocard_data.model_index_to_eval_results(meta["model-index"])
            assert name == card.model_id and len(results) == card.n_results
            assert all((r.source_url is None) == (site_url is None) for r in results)


def test_the_pretrained_model_is_ranked_but_gets_no_card(tmp_path, warehouse):
    """The leaderboard of issue 17: the pretrained model a ranked row, no posterior_* columns. On roberta-base it
    ranks 2, so the rank-3 candidate is below it; on all-MiniLM-L6-v2 it ranks 1 and the order carries no
    evidence; a candidate whose mean gain is not above zero says so too."""
    _new_schema(warehouse, {"roberta-base": 2, "all-MiniLM-L6-v2": 1}, no_evidence=("all-MiniLM-L6-v2",))
    con = duckdb.connect(str(warehouse))
    assert not any(c.startswith("posterior") for c in _columns(con, "leaderboard"))
    con.execute("update leaderboard set mean_gain = -0.25 where architecture = 'roberta-base' and rank = 4")
    rows = {(a, m): (r, g) for a, m, r, g in con.execute(
        "select architecture, model_id, rank, mean_gain from leaderboard where rank is not null").fetchall()}
    n_ranked = dict(con.execute(
        "select architecture, count(*) from leaderboard where rank is not null and not flagged group by all").fetchall())
    con.close()
    summary = export_model_cards(warehouse, tmp_path / "cards", top=3)
    cards = {(c.architecture, c.rank): c for c in summary.cards}
    assert sorted(cards) == [("all-MiniLM-L6-v2", 2), ("all-MiniLM-L6-v2", 3), ("all-MiniLM-L6-v2", 4),
                             ("roberta-base", 1), ("roberta-base", 3), ("roberta-base", 4)]
    assert not {"roberta-base", "sentence-transformers/all-MiniLM-L6-v2"} & {c.model_id for c in summary.cards}
    stay = "itself is expected to do as well or better than starting from this model"
    for (arch, rank), card in cards.items():
        text = card.markdown_path.read_text()
        pretrained = "roberta-base" if arch == "roberta-base" else "sentence-transformers/all-MiniLM-L6-v2"
        _, gain = rows[(arch, card.model_id)]
        assert f"Rank **{rank}** of {n_ranked[arch]} ranked `{arch}` starting points" in text
        assert f"where the pretrained model `{pretrained}` ranks {2 if arch == 'roberta-base' else 1}." in text
        assert f"gains **{gain:+.2f} points** on average" in text
        assert "posterior" not in text.lower()
        assert (stay in text) == card.below_pretrained == (rank > 2 if arch == "roberta-base" else True)
        assert ("carries no evidence" in text) == (arch == "all-MiniLM-L6-v2")
    assert "(it ranks below the pretrained model)" in cards[("roberta-base", 3)].markdown_path.read_text()
    assert ("(its mean gain is not above zero and it ranks below the pretrained model)"
            in cards[("roberta-base", 4)].markdown_path.read_text())
    assert cards[("roberta-base", 1)].below_pretrained is False
    index = summary.index_path.read_text()
    assert index.count("starting from the pretrained model is expected to do as well or better") == 5


def test_the_card_reads_a_leaderboard_without_the_optional_columns(tmp_path, warehouse):
    con = duckdb.connect(str(warehouse))
    for column in ("p_better_than_rank1", "tied_with_rank1", "reliability", "flagged", "posterior_gain",
                   "posterior_low", "posterior_high", "is_pretrained", "tied", "order_has_evidence"):
        if column in _columns(con, "leaderboard"):
            con.execute(f"alter table leaderboard drop column {column}")
    con.execute(f"update leaderboard set rank = null where model_id = '{FLAGGED_MODEL}'")
    con.close()
    summary = export_model_cards(warehouse, tmp_path / "cards", top=2)
    assert len(summary.cards) == 4
    text = summary.cards[0].markdown_path.read_text()
    assert "gains **" in text and "cannot be told apart" not in text and "reliability" not in text


def test_hostile_model_name_is_quoted_in_yaml(tmp_path, warehouse):
    summary = export_model_cards(warehouse, tmp_path / "cards", top=10)
    hostile = [c for c in summary.cards if c.model_id == HOSTILE_MODEL]
    assert hostile, "the fixture ranks the hostile-named model"
    for card in hostile:
        assert yaml.safe_load(card.yaml_path.read_text())["model-index"][0]["name"] == HOSTILE_MODEL
        assert card.yaml_path.parent.parent == tmp_path / "cards"  # no path traversal from the id
        assert f"## Finetuning from `{HOSTILE_MODEL}`" in card.markdown_path.read_text()


def test_markdown_escape_covers_entities():
    from startpoint.modelcard.markdown import escape

    assert escape("a&lt;script&gt;") == "a\\&lt;script\\&gt;"  # no HTML entity survives on the Hub


def test_backticks_in_a_model_id_stay_inside_its_code_span():
    from startpoint.modelcard.export import _code

    assert _code("a`b") == "``a`b``"
    assert _code("`x``") == "``` `x`` ```"
    assert _code("two\nlines") == "`two lines`"


def test_top_must_be_positive(tmp_path, warehouse):
    with pytest.raises(ValueError, match="--top"):
        export_model_cards(warehouse, tmp_path / "cards", top=0)
