"""Safe loading of encoder folders: safetensors only (unless told otherwise), never remote code.

`check_model_dir` is the one place that decides whether a local model folder may be loaded; the Hub layer
reuses it for downloaded snapshots. It checks the folder completely without loading any tensor:

- a readable `config.json`, and no code of the model's own (the catalog's remote-code rule);
- weights: every safetensors file (`model.safetensors`, and each shard `model.safetensors.index.json` names) has
  a valid header (8-byte little-endian length + JSON) and holds all the tensor bytes that header promises, so a
  truncated or fake file is refused naming the file; pickled `.bin` weights only with `allow_pickle=True`;
- a tokenizer: `tokenizer.json`, or `vocab.txt`, or `vocab.json` + `merges.txt`, or a sentencepiece model,
  whose vocabulary is not tiny next to the config's `vocab_size` (a 5-token vocabulary maps every word to
  [UNK] and scores chance level without any error).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path


class ModelDirError(ValueError):
    """A model folder that cannot (or must not) be loaded; the message names the folder and the fix."""


_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Vocabulary files a transformers tokenizer can be built from (download.py fetches the same names).
_SENTENCEPIECE = ("spiece.model", "sentencepiece.bpe.model", "spm.model")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", *_SENTENCEPIECE)
# A vocabulary smaller than this, or than this share of config.json's vocab_size, is not the model's tokenizer.
MIN_VOCAB = 100
MIN_VOCAB_SHARE = 0.1
_MAX_HEADER = 100_000_000  # the safetensors format's own cap on the header size
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
                "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip
_REDO = "delete the folder and download or save the model again"


def check_model_dir(path: str | Path, *, allow_pickle: bool = False) -> None:
    """Raise ModelDirError unless `path` holds a config, loadable weights and a tokenizer.

    Pickled `.bin` weights can run arbitrary code when loaded, so a folder that has only those is refused
    unless the caller passes `allow_pickle=True` on purpose.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelDirError(f"model folder {folder} has no config.json; it is not a transformers model folder")
    from startpoint.hub.policy import (  # the catalog's rule, applied at load time
        facts_from_dir,
        remote_code_reasons,
    )

    try:
        facts = facts_from_dir(folder, folder.name)
    except (ValueError, OSError) as exc:  # unreadable config.json
        raise ModelDirError(str(exc)) from None
    remote_code = remote_code_reasons(facts)
    if remote_code:
        raise ModelDirError(
            f"model folder {folder} ships its own code ({'; '.join(remote_code)}); startpoint never runs a "
            "model's code: use a checkpoint of a standard architecture"
        )
    if not isinstance(facts.config, dict):
        raise ModelDirError(f"model folder {folder}: config.json is not a JSON object; {_REDO}")
    _check_weights(folder, allow_pickle)
    check_tokenizer_files(folder, facts.config)


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file() or index.is_file():
        if single.is_file():
            check_safetensors_file(single)
        if index.is_file():
            for shard in safetensors_shards(index):
                check_safetensors_file(shard)
        return
    if any((folder / name).is_file() for name in _PICKLE_WEIGHTS):
        if allow_pickle:
            return
        raise ModelDirError(
            f"model folder {folder} has only pickled pytorch_model.bin weights, which can execute code when "
            "loaded; convert them to safetensors or pass allow_pickle=True if you trust the source"
        )
    raise ModelDirError(
        f"model folder {folder} has no weights (expected model.safetensors); the download or save was "
        "incomplete: delete the folder and create it again"
    )


def safetensors_shards(index: Path) -> list[Path]:
    """The shard files `model.safetensors.index.json` names; ModelDirError unless each is a safetensors file here."""
    try:
        weight_map = json.loads(index.read_text()).get("weight_map")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise ModelDirError(f"{index} is not a valid safetensors index ({exc}); {_REDO}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelDirError(f"{index} has no weight_map naming its shards; {_REDO}")
    shards = []
    for name in sorted({str(v) for v in weight_map.values()}):
        if Path(name).name != name or name in {".", ".."}:
            raise ModelDirError(f"{index} names the shard {name!r}, which is not a file in {index.parent}")
        if not name.endswith(".safetensors"):
            raise ModelDirError(
                f"{index} names the shard {name!r}, which is not a safetensors file; startpoint loads safetensors "
                "shards only (pickled shards can execute code): convert the weights to safetensors"
            )
        shard = index.parent / name
        if not shard.is_file():
            raise ModelDirError(f"{index} names the shard {name}, which is missing; the download was incomplete: {_REDO}")
        shards.append(shard)
    return shards


def check_safetensors_file(path: str | Path) -> None:
    """Read only the header of a safetensors file: ModelDirError naming the file when it is truncated or not one."""
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise ModelDirError(f"{path} is not a safetensors file ({size} bytes, too short for a header); {_REDO}")
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n == 0 or n > _MAX_HEADER:
            raise ModelDirError(f"{path} is not a safetensors file (its first 8 bytes are no header length); {_REDO}")
        if 8 + n > size:
            raise ModelDirError(
                f"{path} is truncated: its header alone needs {8 + n} bytes but the file has {size}; {_REDO}"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ModelDirError(f"{path} is not a safetensors file (its header is not JSON); {_REDO}") from None
    if not isinstance(header, dict):
        raise ModelDirError(f"{path} is not a safetensors file (its header is not a JSON object); {_REDO}")
    end, tensors = 0, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in info["data_offsets"])
            shape = [int(d) for d in info["shape"]]
            dtype = str(info["dtype"])
        except (KeyError, TypeError, ValueError):
            raise ModelDirError(f"{path} is not a valid safetensors file (tensor {name!r} has no dtype, shape "
                                f"and data_offsets); {_REDO}") from None
        count = 1
        for d in shape:
            count *= d
        if not 0 <= begin <= stop or (dtype in _DTYPE_BYTES and stop - begin != count * _DTYPE_BYTES[dtype]):
            raise ModelDirError(f"{path} is corrupt: tensor {name!r} ({dtype} {shape}) has data offsets "
                                f"[{begin}, {stop}] that do not fit its size; {_REDO}")
        end, tensors = max(end, stop), tensors + 1
    if not tensors:
        raise ModelDirError(f"{path} holds no tensors; {_REDO}")
    if 8 + n + end > size:
        raise ModelDirError(
            f"{path} is truncated: its tensors need {8 + n + end} bytes but the file has {size}; {_REDO}"
        )


def check_tokenizer_files(folder: str | Path, config: dict | None = None) -> None:
    """ModelDirError unless `folder` has tokenizer files whose vocabulary fits the model (see MIN_VOCAB)."""
    folder = Path(folder)
    present = {name for name in TOKENIZER_FILES if (folder / name).is_file()}
    usable = bool({"tokenizer.json", "vocab.txt", *_SENTENCEPIECE} & present) or {"vocab.json", "merges.txt"} <= present
    if not usable:
        missing = " (vocab.json without merges.txt)" if "vocab.json" in present else ""
        raise ModelDirError(
            f"model folder {folder} has no tokenizer files{missing}: expected tokenizer.json, or vocab.txt, or "
            f"vocab.json + merges.txt, or a sentencepiece model ({', '.join(_SENTENCEPIECE)}); the model was saved "
            "without its tokenizer: save the tokenizer next to the weights (tokenizer.save_pretrained)"
        )
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        try:
            if not isinstance(json.loads(tok_config.read_text()), dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelDirError(f"{tok_config} is not valid JSON ({exc}); {_REDO}") from None
    config = config if config is not None else _read_json(folder / "config.json")
    vocab_size = config.get("vocab_size") if isinstance(config, dict) else None
    vocab_size = vocab_size if isinstance(vocab_size, int) and vocab_size > 0 else None
    floor = max(MIN_VOCAB, int(MIN_VOCAB_SHARE * vocab_size) if vocab_size else 0)
    for name in sorted(present - {"merges.txt"}):
        n = vocabulary_size(folder / name)
        if n < floor:
            against = f"config.json's vocab_size is {vocab_size}" if vocab_size else f"a real vocabulary has {MIN_VOCAB}+"
            raise ModelDirError(
                f"{folder / name} holds a {n}-token vocabulary but {against}: the tokenizer is broken or belongs "
                "to another model, and every word would become an unknown token; save the model's own tokenizer "
                "next to its weights"
            )


def vocabulary_size(path: Path) -> int:
    """Tokens in one vocabulary file (tokenizer.json, vocab.txt, vocab.json or a sentencepiece model)."""
    path = Path(path)
    stat = path.stat()
    return _vocabulary_size(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _vocabulary_size(where: str, _size: int, _mtime_ns: int) -> int:
    """Cached per file version: a run checks the same folder several times (check, tokenizer, encoder)."""
    path = Path(where)
    name = path.name
    try:
        if name == "vocab.txt":
            with path.open("rb") as f:
                return sum(1 for line in f if line.strip(b"\r\n"))
        if name in _SENTENCEPIECE:
            return _sentencepiece_pieces(path.read_bytes())
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelDirError(f"{path} cannot be read as a vocabulary ({exc}); {_REDO}") from None
    if name == "vocab.json":
        if not isinstance(data, dict):
            raise ModelDirError(f"{path} is not a token -> id mapping; {_REDO}")
        return len(data)
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, (dict, list)):
        raise ModelDirError(f"{path} has no model.vocab; it is not a tokenizers file: {_REDO}")
    known = set(vocab) if isinstance(vocab, dict) else set()
    added = [t.get("content") for t in data.get("added_tokens") or [] if isinstance(t, dict)]
    return len(vocab) + sum(1 for t in added if t not in known)


def _sentencepiece_pieces(data: bytes) -> int:
    """The number of pieces (repeated field 1) in a sentencepiece ModelProto, walking the protobuf wire format."""

    def varint(i: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError("truncated protobuf")
            byte = data[i]
            value |= (byte & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if not byte & 0x80:
                return value, i

    i, count = 0, 0
    while i < len(data):
        key, i = varint(i)
        wire = key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            length, i = varint(i)
            i += length
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"not a sentencepiece model (wire type {wire})")
        if i > len(data):
            raise ValueError("truncated protobuf")
        count += key >> 3 == 1 and wire == 2
    return count


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def load_encoder(path: str | Path, *, allow_pickle: bool = False):
    """The bare encoder (AutoModel) of a checked folder, in float32, without remote code.

    A load error, or weights that leave part of the encoder uninitialised (random), is a ModelDirError."""
    from transformers import AutoModel

    check_model_dir(path, allow_pickle=allow_pickle)
    try:
        model, info = AutoModel.from_pretrained(
            str(path), trust_remote_code=False, use_safetensors=not allow_pickle or _has_safetensors(path),
            output_loading_info=True,
        )
    except Exception as exc:  # noqa: BLE001 - any failure to load a folder is that folder's fault
        raise ModelDirError(f"model folder {path}: the weights could not be loaded ({type(exc).__name__}: "
                            f"{str(exc)[:300]}); {_REDO}") from None
    missing = sorted(k for k in info.get("missing_keys") or () if not k.startswith("pooler."))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:5])
        raise ModelDirError(
            f"model folder {path}: the weights do not fit config.json ({len(missing)} missing and {len(mismatched)} "
            f"mismatched tensors, e.g. {shown}); they would be random: the weights belong to another model: {_REDO}"
        )
    return model


def load_tokenizer(path: str | Path):
    """The tokenizer of a folder; any load failure is a ModelDirError naming the folder."""
    from transformers import AutoTokenizer

    check_tokenizer_files(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - any failure to load a folder is that folder's fault
        raise ModelDirError(f"model folder {path}: the tokenizer could not be loaded ({type(exc).__name__}: "
                            f"{str(exc)[:300]}); {_REDO}") from None


def _has_safetensors(path: str | Path) -> bool:
    return any((Path(path) / name).is_file() for name in _SAFE_WEIGHTS)
