"""The 36 targets of the published model-recycling experiment: metric and task group of each.

Facts from the paper's setup (Choshen et al., 2023): every target is scored by accuracy except `stsb`
(Spearman correlation). Groups follow the paper's grouping of its target suite. A results folder may hold any
subset of these and targets of its own; an unknown target's metric comes from its pretrain seeds (see
:func:`startpoint.published.reader.target_metrics`) and its task group is None.
"""

from __future__ import annotations

_GROUPS: dict[str, tuple[str, ...]] = {
    "nli": ("mnli", "esnli", "qnli", "rte", "wnli", "anli"),
    "sentiment": (
        "sst2",
        "sst_5bins",
        "poem_sentiment",
        "imdb",
        "rotten_tomatoes",
        "amazon_reviews_multi",
        "financial_phrasebank",
    ),
    "topic": ("ag_news", "isear", "yahoo_answers", "dbpedia", "20_newsgroup", "trec_fine", "trec_coarse"),
    "twitter": (
        "tweet_ev_emoji",
        "tweet_ev_emotion",
        "tweet_ev_hate",
        "tweet_ev_irony",
        "tweet_ev_offensive",
        "tweet_ev_sentiment",
    ),
    "other": ("cola", "stsb", "qqp", "mrpc", "boolq", "cb", "copa", "multirc", "wic", "wsc"),
}

TASK_GROUP: dict[str, str] = {t: g for g, ts in _GROUPS.items() for t in ts}
METRIC: dict[str, str] = {t: ("spearman" if t == "stsb" else "accuracy") for t in TASK_GROUP}
TARGETS: tuple[str, ...] = tuple(sorted(TASK_GROUP))


def metric_range(metric: str) -> tuple[float, float]:
    """Valid score range in percent: accuracy in [0, 100], Spearman x100 in [-100, 100]."""
    return (-100.0, 100.0) if metric == "spearman" else (0.0, 100.0)
