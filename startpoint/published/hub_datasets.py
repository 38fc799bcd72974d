"""Hugging Face Hub dataset of each published target, for the `dataset` of a model card's `model-index`.

The model-index schema (huggingface/hub-docs, modelcard.md) asks for `dataset.type`, "the dataset id from
https://hf.co/datasets" (required), `dataset.name`, a pretty name (required), and optionally `dataset.config`, the
configuration passed to `load_dataset()` (e.g. `mnli` in `load_dataset("glue", "mnli")`). The table below gives
`(type, config)` for the 36 targets of the published model-recycling experiment (Choshen et al., 2023): the
canonical Hub ids those datasets were published under (they still resolve on the Hub, some now redirecting to an
organisation's namespace), and the configuration where the id holds several. The config is None where the id has
one configuration, or where the results do not say which one was used (financial_phrasebank's agreement level,
amazon_reviews_multi's language): a guess there would claim more than is known.

`isear` has no canonical Hub dataset, so it has no entry; neither have the offline suite's local datasets
(:mod:`startpoint.data.offline`). A startpoint dataset id of the form ``hf:<id>[:<config>]`` names its Hub
dataset itself. :func:`hub_dataset` returns None for everything else, and a model card then leaves that target out
of its `model-index` (a result without `dataset.type` does not validate) rather than invent an id.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple


class HubDataset(NamedTuple):
    type: str  # the Hub dataset id (model-index `dataset.type`)
    config: str | None = None  # the `load_dataset()` configuration (model-index `dataset.config`)


# `name` or `owner/name` as the Hub spells repository ids; a `load_dataset()` config name
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
_CONFIG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")

_GLUE = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli")
_SUPER_GLUE = ("boolq", "cb", "copa", "multirc", "wic", "wsc")
_TWEET_EVAL = ("emoji", "emotion", "hate", "irony", "offensive", "sentiment")

HUB_DATASETS: dict[str, HubDataset] = {
    **{t: HubDataset("glue", t) for t in _GLUE},
    **{t: HubDataset("super_glue", t) for t in _SUPER_GLUE},
    **{f"tweet_ev_{t}": HubDataset("tweet_eval", t) for t in _TWEET_EVAL},
    "20_newsgroup": HubDataset("SetFit/20_newsgroups"),
    "ag_news": HubDataset("ag_news"),
    "amazon_reviews_multi": HubDataset("amazon_reviews_multi"),
    "anli": HubDataset("anli"),
    "dbpedia": HubDataset("dbpedia_14"),
    "esnli": HubDataset("esnli"),
    "financial_phrasebank": HubDataset("financial_phrasebank"),
    "imdb": HubDataset("imdb"),
    "poem_sentiment": HubDataset("poem_sentiment"),
    "rotten_tomatoes": HubDataset("rotten_tomatoes"),
    "sst_5bins": HubDataset("sst", "default"),  # SST's sentiment score in [0, 1], cut into 5 bins
    "trec_coarse": HubDataset("trec"),  # the coarse label of TREC
    "trec_fine": HubDataset("trec"),  # the fine label of TREC
    "yahoo_answers": HubDataset("yahoo_answers_topics"),
}


def hub_dataset(dataset_id: str) -> HubDataset | None:
    """The Hub dataset (id and config) of a startpoint dataset id, or None where none is known."""
    if not isinstance(dataset_id, str):
        return None
    if dataset_id.startswith("hf:"):
        hub_id, _, config = dataset_id[3:].partition(":")
        # `hf:` also takes a local folder: only a well-formed Hub id that is not a folder here counts
        if _HUB_ID.fullmatch(hub_id) and (not config or _CONFIG.fullmatch(config)) and not Path(hub_id).exists():
            return HubDataset(hub_id, config or None)
        return None
    return HUB_DATASETS.get(dataset_id)
