"""Model-card export on the fixture warehouse: top models per architecture, valid model-index YAML whose values
match the warehouse's gains table."""

from __future__ import annotations

import duckdb
import pytest
import yaml

from startpoint.modelcard import export_model_cards

from product_fixture import FLAGGED_MODEL, HOSTILE_MODEL, build


@pytest.fixture()
def warehouse(tmp_path):
    return build(tmp_path / "warehouse.duckdb")


def test_top_models_get_markdown_and_model_index(tmp_path, warehouse):
    summary = export_model_cards(warehouse, tmp_path / "cards", top=3, site_url="https://example.org/startpoint")
    by_arch: dict[str, list] = {}
    for card in summary.cards:
        by_arch.setdefault(card.architecture, []).append(card)
    assert sorted(by_arch) == ["all-MiniLM-L6-v2", "roberta-base"]
    con = duckdb.connect(str(warehouse), read_only=True)
    for arch, cards in by_arch.items():
        expected = [r[0] for r in con.execute(
            "select model_id from leaderboard where architecture = ? and rank is not null order by rank limit 3", [arch]
        ).fetchall()]
        assert [c.model_id for c in cards] == expected
        assert FLAGGED_MODEL not in expected
        for card in cards:
            meta = yaml.safe_load(card.yaml_path.read_text())
            entry = meta["model-index"][0]
            assert entry["name"] == card.model_id
            assert len(entry["results"]) == card.n_results == 9
            for result in entry["results"]:
                want = con.execute(
                    "select score_mean from gains where architecture = ? and model_id = ? and dataset_id = ?",
                    [arch, card.model_id, result["dataset"]["name"]],
                ).fetchone()[0]
                assert result["metrics"][0]["value"] == pytest.approx(want, abs=0.006)
                assert result["source"]["url"].startswith("https://example.org/startpoint/model/")
                assert result["task"]["type"] == "text-classification"
            stsb = next(r for r in entry["results"] if r["dataset"]["name"] == "stsb")
            assert stsb["metrics"][0]["type"] == "spearman"
            text = card.markdown_path.read_text()
            front = yaml.safe_load(text.split("---\n")[1])
            assert front == meta
            assert f"Rank **{card.rank}**" in text
            post, low, high, rel, tied, p = con.execute(
                """select posterior_gain, posterior_low, posterior_high, reliability, tied_with_rank1,
                          p_better_than_rank1
                   from leaderboard where architecture = ? and model_id = ?""",
                [arch, card.model_id],
            ).fetchone()
            assert (f"Its posterior gain, which sets the rank, is **{post:+.2f} points** (95% interval {low:+.2f} "
                    f"to {high:+.2f}); the reliability of the `{arch}` ranking is {rel:.2f}.") in text
            if card.rank > 1:
                assert ("cannot be told apart from rank 1" in text) == tied
                assert f"chance of being better than rank 1: {p:.0%}" in text
    con.close()
    assert summary.index_path.read_text().count("\n- ") + 1 >= 6


def test_hostile_model_name_is_quoted_in_yaml(tmp_path, warehouse):
    summary = export_model_cards(warehouse, tmp_path / "cards", top=10)
    hostile = [c for c in summary.cards if c.model_id == HOSTILE_MODEL]
    assert hostile, "the fixture ranks the hostile-named model"
    for card in hostile:
        assert yaml.safe_load(card.yaml_path.read_text())["model-index"][0]["name"] == HOSTILE_MODEL
        assert card.yaml_path.parent.parent == tmp_path / "cards"  # no path traversal from the id
        assert f"## Finetuning from `{HOSTILE_MODEL}`" in card.markdown_path.read_text()


def test_backticks_in_a_model_id_stay_inside_its_code_span():
    from startpoint.modelcard.export import _code

    assert _code("a`b") == "``a`b``"
    assert _code("`x``") == "``` `x`` ```"
    assert _code("two\nlines") == "`two lines`"


def test_top_must_be_positive(tmp_path, warehouse):
    with pytest.raises(ValueError, match="--top"):
        export_model_cards(warehouse, tmp_path / "cards", top=0)
