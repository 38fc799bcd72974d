"""Top-k selection from probe scores: ranking rules and the finetune plan the selection job runs."""

import datetime as dt

import pytest

from startpoint.probes.selection import plan_finetunes, rank_by_probe

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def row(model, score, method="linear_probe", arch="roberta-base", proxy="tweets_sentiment", days=0):
    return {"model_id": model, "architecture": arch, "method": method, "proxy_dataset": proxy, "score": score,
            "ingested_at": T0 + dt.timedelta(days=days)}


def test_ranking_keeps_the_newest_score_and_filters_method_architecture_and_proxy():
    rows = [
        row("a", 60.0), row("a", 40.0, days=1),  # re-probed: the newer score counts
        row("b", 55.0), row("c", 55.0),  # tie: model id order
        row("d", 99.0, method="logme"), row("e", 99.0, arch="bert-base-uncased"), row("f", 99.0, proxy="hf:x"),
        row("g", None),
    ]
    assert rank_by_probe(rows, "roberta-base", "linear_probe", "tweets_sentiment") == [("b", 55.0), ("c", 55.0), ("a", 40.0)]
    assert [m for m, _ in rank_by_probe(rows, "roberta-base", "linear_probe")] == ["f", "b", "c", "a"]


def test_plan_finetunes_the_baseline_with_more_seeds_and_the_top_k_candidates():
    ranked = [("base", 70.0), ("x", 65.0), ("y", 60.0), ("z", 50.0)]
    plans = plan_finetunes(ranked, k=2, pretrained="base", targets=["t1", "t2"], seeds=[0, 1],
                           baseline_seeds=[0, 1, 2, 3, 4], method="logme")
    assert [(p.model_id, p.seeds) for p in plans] == [("base", (0, 1, 2, 3, 4)), ("x", (0, 1)), ("y", (0, 1))]
    assert plans[1].reason == "top 1 by logme (65)" and all(p.targets == ("t1", "t2") for p in plans)
    assert len(plan_finetunes(ranked, k=10, pretrained="base", targets=["t"], seeds=[0], baseline_seeds=[0],
                              method="logme")) == 4
    with pytest.raises(ValueError, match="at least 1"):
        plan_finetunes(ranked, k=0, pretrained="base", targets=["t"], seeds=[0], baseline_seeds=[0], method="logme")
