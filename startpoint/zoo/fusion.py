"""Fused start points: merge the encoder weights of several compatible models into one model folder.

Two methods (docs/fusion.md):

- ``average``: the (weighted) mean of the members' encoder tensors, weights summing to 1 (uniform by default);
- ``task_arithmetic``: ``base + scale * sum_i (member_i - base)`` with the members' pretrained base.

Members are read from safetensors only (``check_model_dir`` refuses pickled weights, and remote code is never
run: the config is read with ``trust_remote_code=False`` and no model code of a folder is imported). Only the
bare encoder is fused: any head a checkpoint carries (keys the architecture's bare model does not have, e.g.
``classifier.*``) is left out, as is the pooler the engine never reads, and a ``bert.``-style prefix is stripped,
so the result is an encoder start point like the intermediate models. Members must have the same ``model_type``
and the same encoder keys and shapes; the first mismatch is reported in one line naming both models and the tensor.

The result is a model folder: ``model.safetensors``, ``config.json`` and the tokenizer copied from the first
member, and ``startpoint.json`` with the provenance (members, weights, method, scale, how they were chosen).

Ranking helpers pick the members: ``rank_from_runs`` orders the pretrained base and its local intermediate models
by their mean gain over the base across the targets both were finetuned on (seed means), the rule used when no
warehouse ranking exists yet and the one the default grid uses (so `make run` is the same from a clean home).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from startpoint.zoo.loading import (
    TOKENIZER_FILES,
    ModelDirError,
    check_model_dir,
    safetensors_shards,
)

METHODS = ("average", "task_arithmetic")
# The recipes the `fused_models` asset offers (any key `top<k>-avg` or `top<k>-ta<scale>` parses).
RECIPE_KEYS = ("top2-avg", "top3-avg", "top5-avg", "top2-ta0.5")
_RECIPE = re.compile(r"^top(?P<k>[1-9][0-9]*)-(?:(?P<avg>avg)|ta(?P<scale>[0-9]+(?:\.[0-9]+)?))$")
_TOKENIZER_EXTRA = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
CARD_FILE = "startpoint.json"


class FusionError(ValueError):
    """Members that cannot be fused, or a recipe that cannot be followed; the message is one line."""


@dataclass(frozen=True)
class FusionRecipe:
    key: str
    k: int
    method: str  # average | task_arithmetic
    scale: float | None = None  # task arithmetic only

    @classmethod
    def parse(cls, key: str) -> FusionRecipe:
        m = _RECIPE.match(key or "")
        if not m:
            raise FusionError(f"fusion recipe {key!r} is not `top<k>-avg` or `top<k>-ta<scale>` (e.g. top2-avg, "
                              "top2-ta0.5)")
        k = int(m["k"])
        if k < 2:
            raise FusionError(f"fusion recipe {key!r} fuses fewer than 2 models; use k >= 2")
        if m["avg"]:
            return cls(key, k, "average")
        scale = float(m["scale"])
        if not scale > 0:
            raise FusionError(f"fusion recipe {key!r} has scale {scale}; task arithmetic needs a scale > 0")
        return cls(key, k, "task_arithmetic", scale)


@dataclass
class EncoderState:
    model_id: str
    folder: Path
    model_type: str
    tensors: dict = field(repr=False)  # encoder key -> torch.Tensor


def _read_config(model_id: str, folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FusionError(f"model {model_id!r}: {folder / 'config.json'} cannot be read ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise FusionError(f"model {model_id!r}: {folder / 'config.json'} names no model_type")
    return config


# Encoder tensors the engine never reads (it mean-pools the last hidden states, so BERT's pooler is unused): left out
# of a fusion, since members need not carry them (the rebuilt paraphrase-MiniLM-L3-v2 has no pooler weights).
UNUSED_BY_ENGINE = ("pooler.",)


def _encoder_keys(folder: Path) -> tuple[str, set[str]]:
    """(base_model_prefix, the bare encoder's state-dict keys) for the folder's architecture, built on the meta
    device from the config alone (no weights, no code of the folder)."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModel.from_config(config, trust_remote_code=False)
    return model.base_model_prefix, set(model.state_dict().keys())


def load_encoder_state(model_id: str, folder: str | Path) -> EncoderState:
    """The encoder tensors of a checked model folder, safetensors only; heads are dropped."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        check_model_dir(folder)  # refuses pickle-only folders, remote code, truncated safetensors
    except ModelDirError as exc:
        raise FusionError(f"model {model_id!r} cannot be fused: {exc}") from None
    config = _read_config(model_id, folder)
    prefix, wanted = _encoder_keys(folder)
    files = [folder / "model.safetensors"] if (folder / "model.safetensors").is_file() else []
    if not files:
        files = safetensors_shards(folder / "model.safetensors.index.json")
    tensors: dict = {}
    for path in files:
        for key, value in load_file(str(path)).items():
            name = key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") else key
            if name in wanted and not name.startswith(UNUSED_BY_ENGINE):
                tensors[name] = value
    if not tensors:
        raise FusionError(f"model {model_id!r}: {folder} holds no encoder tensors of a {config['model_type']} model")
    return EncoderState(model_id, folder, config["model_type"], tensors)


def check_compatible(states: Sequence[EncoderState]) -> None:
    """FusionError naming both models and the first differing tensor unless every member has the first
    member's model_type, encoder keys, shapes and (for integer buffers) values."""
    if len(states) < 2:
        raise FusionError(f"fusion needs at least 2 models, got {len(states)}")
    ref = states[0]
    for other in states[1:]:
        pair = f"{ref.model_id!r} and {other.model_id!r}"
        if other.model_type != ref.model_type:
            raise FusionError(f"{pair} cannot be fused: model_type {ref.model_type!r} vs {other.model_type!r}")
        for key in sorted(set(ref.tensors) | set(other.tensors)):
            if key not in other.tensors or key not in ref.tensors:
                holder, lacking = (ref, other) if key not in other.tensors else (other, ref)
                raise FusionError(f"{pair} cannot be fused: tensor {key!r} is in {holder.model_id!r} but not in "
                                  f"{lacking.model_id!r}")
            a, b = ref.tensors[key], other.tensors[key]
            if tuple(a.shape) != tuple(b.shape):
                raise FusionError(f"{pair} cannot be fused: tensor {key!r} has shape {list(a.shape)} vs "
                                  f"{list(b.shape)}")
            if a.is_floating_point() != b.is_floating_point():
                raise FusionError(f"{pair} cannot be fused: tensor {key!r} has dtype {a.dtype} vs {b.dtype}")
            if not a.is_floating_point() and not bool((a == b).all()):
                raise FusionError(f"{pair} cannot be fused: integer tensor {key!r} differs")


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None or len(weights) == 0:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise FusionError(f"{len(weights)} weights for {n} models; give one weight per member")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
        raise FusionError(f"weights {weights} must be finite, non-negative and not all 0")
    total = sum(weights)
    return [w / total for w in weights]


def average(states: Sequence[EncoderState], weights: Sequence[float] | None = None) -> dict:
    """sum_i w_i * member_i per tensor, w normalized to sum to 1 (uniform when not given); computed in float64
    and stored in the first member's dtype."""
    import torch

    check_compatible(states)
    w = _check_weights(weights, len(states))
    out = {}
    for key, first in states[0].tensors.items():
        if not first.is_floating_point():
            out[key] = first.clone()
            continue
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for wi, s in zip(w, states, strict=True):
            acc += wi * s.tensors[key].to(torch.float64)
        out[key] = acc.to(first.dtype)
    return out


def task_arithmetic(base: EncoderState, states: Sequence[EncoderState], scale: float) -> dict:
    """base + scale * sum_i (member_i - base) per tensor (Ilharco et al. 2023's task vectors)."""
    import torch

    check_compatible([base, *states])
    out = {}
    for key, b in base.tensors.items():
        if not b.is_floating_point():
            out[key] = b.clone()
            continue
        b64 = b.to(torch.float64)
        delta = sum((s.tensors[key].to(torch.float64) - b64 for s in states), torch.zeros_like(b64))
        out[key] = (b64 + scale * delta).to(b.dtype)
    return out


def fusion_hash(members: Sequence[str], weights: Sequence[float], method: str, scale: float | None,
                base_model: str | None) -> str:
    """Short hash of what makes a fused model: a different member set gives a different model id, so runs of
    an earlier fusion are never mistaken for runs of this one."""
    blob = json.dumps({"members": list(members), "weights": [round(w, 6) for w in weights], "method": method,
                       "scale": scale, "base_model": base_model}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def fused_id(architecture: str, recipe_key: str, digest: str) -> str:
    """e.g. local/all-MiniLM-L6-v2-fused-top2-avg-1a2b3c4d."""
    return f"local/{architecture}-fused-{recipe_key}-{digest}"


def save_fused(tensors: Mapping, dest: str | Path, *, like: Path, card: dict) -> Path:
    """Write `tensors` as model.safetensors with `like`'s config and tokenizer and the provenance card, into a
    temporary folder that is checked and then renamed to `dest` (a half-written model is never visible)."""
    from safetensors.torch import save_file

    dest, like = Path(dest), Path(like)
    tmp = dest.parent / ".partial" / f"{dest.name}.{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        shutil.copy2(like / "config.json", tmp / "config.json")
        for name in (*TOKENIZER_FILES, *_TOKENIZER_EXTRA):
            if (like / name).is_file():
                shutil.copy2(like / name, tmp / name)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True), encoding="utf-8")
        check_model_dir(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fuse_folders(members: Sequence[tuple[str, Path]], dest: str | Path, *, method: str, architecture: str,
                 model_id: str, weights: Sequence[float] | None = None, base: tuple[str, Path] | None = None,
                 scale: float | None = None, extra_card: dict | None = None) -> dict:
    """Fuse member folders into `dest`; returns the provenance card written there."""
    if method not in METHODS:
        raise FusionError(f"fusion method {method!r} is not one of {', '.join(METHODS)}")
    if len({m for m, _ in members}) != len(members):
        raise FusionError(f"members {[m for m, _ in members]} repeat a model; list each model once")
    states = [load_encoder_state(m, f) for m, f in members]
    if method == "average":
        w = _check_weights(weights, len(states))
        tensors = average(states, w)
    else:
        if base is None:
            raise FusionError("task arithmetic needs the members' pretrained base model")
        if scale is None or not scale > 0:
            raise FusionError(f"task arithmetic needs a scale > 0, got {scale}")
        w = [1.0] * len(states)
        base_state = next((s for s in states if s.model_id == base[0]), None) or load_encoder_state(*base)
        tensors = task_arithmetic(base_state, states, scale)
    card = {
        "model_id": model_id,
        "architecture": architecture,
        "role": "fused",
        "base_model": base[0] if base else None,
        "members": [m for m, _ in members],
        "weights": [round(x, 6) for x in w],
        "method": method,
        "scale": scale if method == "task_arithmetic" else None,
        "n_tensors": len(tensors),
        **(extra_card or {}),
    }
    save_fused(tensors, dest, like=Path(members[0][1]), card=card)
    return card


@dataclass(frozen=True)
class Ranked:
    model_id: str
    mean_gain: float  # points over the pretrained base, mean over shared targets of seed means
    n_targets: int


def rank_from_runs(rows: Iterable[Mapping], base_model: str, candidates: Iterable[str]) -> list[Ranked]:
    """Order `candidates` (which may include `base_model`, gain 0 by definition) by mean gain over the base:
    per target the mean over seeds of successful runs, minus the base's; averaged over the targets both have.
    Ties: model id. A candidate without a shared target is left out."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.get("status") == "ok" and r.get("score") is not None:
            cells[(r["model_id"], r["dataset_id"])].append(float(r["score"]))
    means = {k: sum(v) / len(v) for k, v in cells.items()}
    base = {t: s for (m, t), s in means.items() if m == base_model}
    out = []
    for model in dict.fromkeys(candidates):
        gains = [s - base[t] for (m, t), s in means.items() if m == model and t in base]
        if gains:
            out.append(Ranked(model, sum(gains) / len(gains), len(gains)))
    return sorted(out, key=lambda r: (-r.mean_gain, r.model_id))


# --- Choosing members and making the fused model (used by the `fused_models` asset) ---------------------------

RANKINGS = ("auto", "warehouse", "lake")


def local_candidates(base_model: str, models_dir: Path) -> list[str]:
    """The base and the local intermediate models made from it (model cards naming it as base; fused models are
    never members), in a stable order."""
    from startpoint.zoo import read_model_card

    out = [base_model]
    if Path(models_dir).is_dir():
        for folder in sorted(Path(models_dir).iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                card = read_model_card(folder)
            except ModelDirError:
                continue
            if (card.get("base_model") == base_model and card.get("role", "intermediate") != "fused"
                    and isinstance(card.get("model_id"), str)):
                out.append(card["model_id"])
    return out


def _warehouse_ranking(warehouse_path: Path, architecture: str, base_model: str, candidates: list[str]) -> list[Ranked]:
    """The warehouse leaderboard's rows in its rank order, with their gains (mean over kept cells, points over the
    pretrained model; the pretrained model itself at 0), restricted to `candidates`; [] when there is no warehouse or no leaderboard yet."""
    import duckdb

    from startpoint.warehouse.leaderboard import LeaderboardMissing, read_leaderboard
    from startpoint.warehouse.load import connect

    if not Path(warehouse_path).is_file():
        return []
    try:
        con = connect(warehouse_path, read_only=True, wait_seconds=10)
    except (duckdb.Error, FileNotFoundError):
        return []
    try:
        board = read_leaderboard(con, architecture=architecture, ranked=True)
    except (LeaderboardMissing, duckdb.Error):  # no leaderboard built yet
        return []
    finally:
        con.close()
    rows = list(zip(board["model_id"], board["mean_gain"], board["n_targets"], board["rank"], strict=True))
    wanted = set(candidates)
    rank_of = {m: r for m, _, _, r in rows}
    ranked = [Ranked(m, float(g), int(n)) for m, g, n, _ in rows if m in wanted and g is not None]
    if ranked and base_model in wanted and base_model not in {r.model_id for r in ranked}:
        ranked.append(Ranked(base_model, 0.0, max(r.n_targets for r in ranked)))
    # the leaderboard's order (its rank), then the gain; the pretrained model ranks where the leaderboard puts it
    return sorted(ranked, key=lambda r: (rank_of.get(r.model_id, float("inf")), -r.mean_gain, r.model_id))


def choose_members(base_model: str, architecture: str, k: int, *, lake_url: str, models_dir: Path,
                   warehouse_path: Path | None, ranking: str = "auto",
                   include_pretrained: bool = True) -> tuple[list[Ranked], str]:
    """The top-k fusable models of one base by the current ranking, and which ranking that was.

    `warehouse`: the leaderboard of the warehouse (the ranking users see); `lake`: mean gain over the base from the
    lake's finetuning runs (`rank_from_runs`); `auto`: the warehouse's when it ranks at least k candidates, else the
    lake's. Candidates are the base (unless `include_pretrained` is false) and its local intermediate models."""
    from startpoint import lake

    if ranking not in RANKINGS:
        raise FusionError(f"ranking {ranking!r} is not one of {', '.join(RANKINGS)}")
    candidates = local_candidates(base_model, models_dir)
    if not include_pretrained:
        candidates = [c for c in candidates if c != base_model]
    ranked, source = [], ""
    if ranking in ("auto", "warehouse") and warehouse_path is not None:
        ranked, source = _warehouse_ranking(Path(warehouse_path), architecture, base_model, candidates), "warehouse"
        if ranking == "auto" and len(ranked) < k:
            ranked = []
    if not ranked and ranking != "warehouse":
        # Local models' runs (the engine writes them under local/; published files are not read).
        local = lake.list_files(lake_url, "finetune_runs", "local")
        rows = lake.read(lake_url, "finetune_runs", "local").to_pylist() if local else []
        rows = [r for r in rows if r["architecture"] == architecture]
        ranked, source = rank_from_runs(rows, base_model, candidates), "lake"
        if include_pretrained and base_model in candidates and not any(r.model_id == base_model for r in ranked):
            ranked = []  # no run of the base: gains cannot be taken
    if len(ranked) < k:
        where = "the warehouse leaderboard" if source == "warehouse" else "finetuning runs in the lake"
        raise FusionError(
            f"top-{k} fusion of {base_model!r}: only {len(ranked)} of its {len(candidates)} local candidate models "
            f"are ranked by {where}; make and finetune more intermediate models first (startpoint run-grid)"
        )
    return ranked[:k], source


@dataclass(frozen=True)
class FusionPlan:
    """What a fusion recipe asks for now: the fused model's id (from its members), members, weights, ranking."""

    model_id: str
    base_model: str
    architecture: str
    recipe: FusionRecipe
    chosen: tuple[Ranked, ...]
    weights: tuple[float, ...]
    ranking: str
    digest: str

    @property
    def members(self) -> list[str]:
        return [r.model_id for r in self.chosen]

    def made(self, models_dir: Path) -> bool:
        """Whether this exact fusion is already saved (a planner can then schedule its runs)."""
        from startpoint.zoo import local_model_dir, read_model_card

        folder = local_model_dir(self.model_id, models_dir)
        try:
            card = read_model_card(folder) if folder.is_dir() else {}
        except ModelDirError:
            return False
        return card.get("fusion_hash") == self.digest and (folder / "model.safetensors").is_file()


def plan_fusion(base_model: str, architecture: str, recipe: FusionRecipe, *, lake_url: str, models_dir: Path,
                warehouse_path: Path | None, ranking: str = "auto", weights: Sequence[float] | None = None,
                include_pretrained: bool = True) -> FusionPlan:
    """Choose the members and name the fused model, without loading any weights."""
    chosen, source = choose_members(base_model, architecture, recipe.k, lake_url=lake_url, models_dir=models_dir,
                                    warehouse_path=warehouse_path, ranking=ranking,
                                    include_pretrained=include_pretrained)
    members = [r.model_id for r in chosen]
    if recipe.method == "average":
        w = _check_weights(weights, len(members))
    else:
        if weights:
            raise FusionError("weights apply to averaging only; task arithmetic uses one scale for every member")
        w = [1.0] * len(members)
    digest = fusion_hash(members, w, recipe.method, recipe.scale, base_model)
    return FusionPlan(fused_id(architecture, recipe.key, digest), base_model, architecture, recipe, tuple(chosen),
                      tuple(w), source, digest)


def make_fused_model(base_model: str, architecture: str, recipe: FusionRecipe, *, lake_url: str, models_dir: Path,
                     warehouse_path: Path | None, ranking: str = "auto", weights: Sequence[float] | None = None,
                     include_pretrained: bool = True, log=print) -> tuple[dict, Path, bool]:
    """Choose the members, fuse them into `$models/<fused id>` unless that exact fusion exists; returns (card,
    folder, made_now)."""
    from startpoint.zoo import local_model_dir, read_model_card, resolve

    plan = plan_fusion(base_model, architecture, recipe, lake_url=lake_url, models_dir=models_dir,
                       warehouse_path=warehouse_path, ranking=ranking, weights=weights,
                       include_pretrained=include_pretrained)
    members, w, digest, model_id, source = plan.members, list(plan.weights), plan.digest, plan.model_id, plan.ranking
    folder = local_model_dir(model_id, models_dir)
    if plan.made(models_dir):
        log(f"{model_id} already fused from {members}; not fusing again")
        return read_model_card(folder), folder, False
    extra = {"recipe": recipe.key, "fusion_hash": digest, "ranking": source,
             "member_gains": {r.model_id: round(r.mean_gain, 4) for r in plan.chosen}}
    card = fuse_folders([(m, resolve(m, models_dir)) for m in members], folder, method=recipe.method,
                        architecture=architecture, model_id=model_id, weights=w,
                        base=(base_model, resolve(base_model, models_dir)), scale=recipe.scale, extra_card=extra)
    log(f"fused {model_id} from {members} ({recipe.method}, ranking: {source})")
    return card, folder, True
