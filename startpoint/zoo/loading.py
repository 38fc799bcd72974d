"""Safe loading of encoder folders: safetensors only (unless told otherwise), never remote code.

`check_model_dir` is the one place that decides whether a local model folder may be loaded; the Hub layer
reuses it for downloaded snapshots. It checks the folder completely without loading any tensor:

- a readable `config.json` (UTF-8 JSON object), and no code of the model's own (the catalog's remote-code rule);
- a config whose shapes are sane (bounded layers, width, vocabulary, heads) and agree with the weights: the
  safetensors headers list every tensor's shape, so the number of layers, the hidden, vocabulary, intermediate
  and position sizes are checked against them before anything is built (a `num_hidden_layers: 100000` config
  would otherwise allocate gigabytes and hang);
- weights: every safetensors file (`model.safetensors`, and each shard `model.safetensors.index.json` names) has
  a valid header (8-byte little-endian length + JSON) and holds all the tensor bytes that header promises, so a
  truncated or fake file is refused naming the file; pickled `.bin` weights only with `allow_pickle=True`;
- a tokenizer: `tokenizer.json`, or `vocab.txt`, or `vocab.json` + `merges.txt`, or a sentencepiece model,
  whose vocabulary is not tiny next to the config's `vocab_size` (a 5-token vocabulary maps every word to
  [UNK] and scores chance level without any error), and that can emit no token id past the embedding matrix
  (an 80k-token tokenizer on 30,522 embedding rows crashes the first forward pass with an IndexError);
- a model card (`startpoint.json`) whose architecture and base model hold no control character.
"""

from __future__ import annotations

import functools
import json
import re
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

    config = read_config(folder / "config.json")
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
    check_model_card(folder)
    shapes = _check_weights(folder, allow_pickle)
    check_config_shapes(folder / "config.json", config, shapes)
    check_tokenizer_files(folder, config, embedding_rows=_embedding_rows(config, shapes))


def read_config(path: str | Path) -> dict:
    """config.json as a dict; ModelDirError naming the file (one line) when it is not UTF-8 JSON holding an object."""
    path = Path(path)
    fix = "restore the model's own config.json (or delete the folder and download or save the model again)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelDirError(f"{path} cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelDirError(f"{path} is not a text file (byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
                            f"UTF-8), so it is no transformers config; {fix}") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelDirError(f"{path} is not valid JSON ({_one_line(exc)}); {fix}") from None
    if not isinstance(config, dict):
        raise ModelDirError(f"{path} holds a JSON {_json_kind(config)}, not an object of settings, so it is no "
                            f"transformers config; {fix}")
    return config


def _json_kind(value) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def _one_line(value) -> str:
    """Text for an error message: control and invisible characters escaped, so a message is one printable line."""
    text = str(value)
    return text if text.isprintable() else repr(text)[1:-1]


# --- the card: what startpoint lists a model under ----------------------------------------------------------------

_CARD_NAMES = ("architecture", "base_model")
MAX_NAME = 200


def check_name(value: str, what: str, where: str | Path) -> str:
    """`value` unless it holds a control or invisible character (an escape sequence would reach terminals and logs
    raw) or is absurdly long; ModelDirError naming the file, with the value escaped."""
    if not isinstance(value, str) or not value.strip():
        raise ModelDirError(f"{where}: {what} is {value!r}, not a name; rewrite {what} or delete the model folder")
    if not value.isprintable() or value != value.strip():
        raise ModelDirError(f"{where}: {what} {value!r} holds a control, invisible or surrounding space character "
                            f"(shown escaped); rewrite {what} as a plain name or delete the model folder")
    if len(value) > MAX_NAME:
        raise ModelDirError(f"{where}: {what} is {len(value)} characters long (at most {MAX_NAME}); rewrite {what} or "
                            "delete the model folder")
    return value


def check_model_card(folder: str | Path) -> None:
    """The names in a folder's startpoint.json (when it has one and it is a JSON object) hold no control character.
    A malformed card is left to `read_model_card`, which names it when the card is needed."""
    path = Path(folder) / "startpoint.json"
    if not path.is_file():
        return
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(card, dict):
        for key in _CARD_NAMES:
            if card.get(key) is not None:
                check_name(card[key], key, path)


# --- config.json against sane bounds and the weights' shapes -------------------------------------------------------

# (what, config keys that may spell it, upper bound); no released encoder comes near these bounds.
_CONFIG_SIZES = (
    ("num_hidden_layers", ("num_hidden_layers", "n_layer", "n_layers", "num_layers"), 256),
    ("hidden_size", ("hidden_size", "d_model", "n_embd", "dim"), 32_768),
    ("vocab_size", ("vocab_size",), 1_048_576),
    ("intermediate_size", ("intermediate_size", "d_ff", "n_inner", "hidden_dim"), 131_072),
    ("num_attention_heads", ("num_attention_heads", "n_head", "n_heads", "num_heads"), 1_024),
    ("max_position_embeddings", ("max_position_embeddings", "n_positions"), 1_048_576),
    ("type_vocab_size", ("type_vocab_size",), 1_024),
    ("embedding_size", ("embedding_size",), 32_768),
)
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block)\.(\d+)\.")
_EMBEDDINGS = ("word_embeddings.weight", "embed_tokens.weight", "wte.weight", "shared.weight")
# tensor name suffix -> (config size, axis of the tensor's shape that holds it)
_SHAPE_OF = (
    ("word_embeddings.weight", "vocab_size", 0),
    ("embed_tokens.weight", "vocab_size", 0),
    ("wte.weight", "vocab_size", 0),
    ("shared.weight", "vocab_size", 0),
    ("intermediate.dense.weight", "intermediate_size", 0),
    ("ffn.lin1.weight", "intermediate_size", 0),
    ("position_embeddings.weight", "max_position_embeddings", 0),
    ("token_type_embeddings.weight", "type_vocab_size", 0),
)


def config_sizes(path: str | Path, config: dict) -> dict[str, int]:
    """The config's sizes (canonical name -> value); ModelDirError naming the file for a size that is not a
    positive integer or exceeds any real model's."""
    sizes: dict[str, int] = {}
    for name, keys, bound in _CONFIG_SIZES:
        key = next((k for k in keys if k in config and config[k] is not None), None)
        if key is None:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelDirError(f"{path}: {key} is {_one_line(repr(value))}, not a positive whole number; restore "
                                "the model's own config.json")
        if value > bound:
            raise ModelDirError(f"{path}: {key} is {value}, beyond any real model (at most {bound}); building it would "
                                "allocate without bound: restore the model's own config.json")
        sizes[name] = value
    heads, hidden = sizes.get("num_attention_heads"), sizes.get("hidden_size")
    if heads and hidden and hidden % heads:
        raise ModelDirError(f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}, so no "
                            "attention layer can be built; restore the model's own config.json")
    return sizes


def check_config_shapes(path: str | Path, config: dict, shapes: dict[str, tuple[list[int], Path]] | None) -> None:
    """ModelDirError naming config.json unless its sizes are sane and agree with the tensor shapes the weights'
    headers list (`shapes`: tensor name -> (shape, file); None for pickled weights, which are bounded only)."""
    sizes = config_sizes(path, config)
    if not shapes:
        return
    fix = "config.json and the weights belong to different models: restore the model's own config.json"

    def disagree(what: str, expected: int, found: str) -> ModelDirError:
        return ModelDirError(f"{path}: {what} is {expected} but {found}; {fix}")

    layers = {int(m.group(1)) for name in shapes if (m := _LAYER.search(name))}
    if layers and "num_hidden_layers" in sizes and sizes["num_hidden_layers"] != max(layers) + 1:
        files = sorted({shapes[n][1].name for n in shapes if _LAYER.search(n)})
        raise disagree("num_hidden_layers", sizes["num_hidden_layers"],
                       f"{', '.join(files)} holds {max(layers) + 1} layers (0-{max(layers)})")
    for suffix, what, axis in _SHAPE_OF:
        name = next((n for n in sorted(shapes) if n == suffix or n.endswith("." + suffix)), None)
        if name is None or what not in sizes:
            continue
        shape, file = shapes[name]
        if len(shape) > axis and shape[axis] != sizes[what]:
            raise disagree(what, sizes[what], f"{file.name} has {name} of shape {shape}")
    embedding = _word_embedding(shapes)
    width = sizes.get("embedding_size", sizes.get("hidden_size"))
    if embedding and width is not None:
        name, (shape, file) = embedding
        if len(shape) == 2 and shape[1] != width:
            what = "embedding_size" if "embedding_size" in sizes else "hidden_size"
            raise disagree(what, width, f"{file.name} has {name} of shape {shape}")


def _word_embedding(shapes: dict | None):
    """(name, (shape, file)) of the input embedding matrix among the weights, or None when there is none known."""
    for suffix in _EMBEDDINGS:
        name = next((n for n in sorted(shapes or ()) if n == suffix or n.endswith("." + suffix)), None)
        if name is not None:
            return name, shapes[name]
    return None


def _embedding_rows(config: dict, shapes: dict | None) -> tuple[int, str] | None:
    """(rows of the input embedding matrix, where that number comes from): the weights' header, else the config."""
    embedding = _word_embedding(shapes)
    if embedding is not None and embedding[1][0]:
        name, (shape, file) = embedding
        return shape[0], f"the embedding matrix {name} in {file.name} has {shape[0]} rows"
    vocab = config.get("vocab_size")
    if isinstance(vocab, int) and not isinstance(vocab, bool) and vocab > 0:
        return vocab, f"config.json's vocab_size is {vocab}"
    return None


def _check_weights(folder: Path, allow_pickle: bool) -> dict[str, tuple[list[int], Path]] | None:
    """The tensor shapes of the safetensors weights (name -> (shape, file)), None for allowed pickled weights."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file() or index.is_file():
        shapes: dict[str, tuple[list[int], Path]] = {}
        files = ([single] if single.is_file() else []) + (safetensors_shards(index) if index.is_file() else [])
        for file in files:
            shapes.update({name: (shape, file) for name, shape in check_safetensors_file(file).items()})
        return shapes
    if any((folder / name).is_file() for name in _PICKLE_WEIGHTS):
        if allow_pickle:
            return None
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


def check_safetensors_file(path: str | Path) -> dict[str, list[int]]:
    """Read only the header of a safetensors file: ModelDirError naming the file when it is truncated or not one;
    else every tensor's shape (name -> shape), read without loading any tensor data."""
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
    end, shapes = 0, {}
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
        end, shapes[name] = max(end, stop), shape
    if not shapes:
        raise ModelDirError(f"{path} holds no tensors; {_REDO}")
    if 8 + n + end > size:
        raise ModelDirError(
            f"{path} is truncated: its tensors need {8 + n + end} bytes but the file has {size}; {_REDO}"
        )
    return shapes


def check_tokenizer_files(folder: str | Path, config: dict | None = None,
                          embedding_rows: tuple[int, str] | None = None) -> None:
    """ModelDirError unless `folder` has tokenizer files whose vocabulary fits the model: not tiny (see MIN_VOCAB),
    and no token id past the embedding matrix (`embedding_rows`: (rows, where that number comes from), from the
    weights' header; by default config.json's vocab_size)."""
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
    extra_ids: dict[Path, int] = {}  # added-token files -> the highest id they add
    if tok_config.is_file():
        data = _json_object(tok_config, "not a JSON object")
        decoder = data.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            extra_ids[tok_config] = max((int(k) for k in decoder if str(k).isdigit()), default=-1)
    added = folder / "added_tokens.json"
    if added.is_file():
        data = _json_object(added, "not a token -> id mapping")
        extra_ids[added] = max((v for v in data.values() if isinstance(v, int) and not isinstance(v, bool)), default=-1)
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
    if embedding_rows is None and vocab_size:
        embedding_rows = vocab_size, f"config.json's vocab_size is {vocab_size}"
    if embedding_rows is not None:
        rows, where = embedding_rows
        bounds = {folder / name: vocabulary_ids(folder / name) - 1 for name in sorted(present - {"merges.txt"})}
        for file, top in {**bounds, **extra_ids}.items():
            if top >= rows:
                raise ModelDirError(
                    f"{file} can emit token ids up to {top} but {where}: ids from {rows} on would crash the forward "
                    "pass (IndexError); the tokenizer belongs to another model: save the model's own tokenizer "
                    "next to its weights"
                )


def vocabulary_size(path: Path) -> int:
    """Tokens in one vocabulary file (tokenizer.json, vocab.txt, vocab.json or a sentencepiece model)."""
    path = Path(path)
    stat = path.stat()
    return _vocabulary_size(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[0]


def vocabulary_ids(path: Path) -> int:
    """One past the highest token id a vocabulary file can emit (its size, unless its ids have gaps)."""
    path = Path(path)
    stat = path.stat()
    return _vocabulary_size(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[1]


def _int_ids(values) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


@functools.lru_cache(maxsize=64)
def _vocabulary_size(where: str, _size: int, _mtime_ns: int) -> tuple[int, int]:
    """(tokens, one past the highest id), cached per file version: a run checks the same folder several times."""
    path = Path(where)
    name = path.name
    try:
        if name == "vocab.txt":
            with path.open("rb") as f:
                n = sum(1 for line in f if line.strip(b"\r\n"))
            return n, n
        if name in _SENTENCEPIECE:
            n = _sentencepiece_pieces(path.read_bytes())
            return n, n
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelDirError(f"{path} cannot be read as a vocabulary ({_one_line(exc)}); {_REDO}") from None
    if name == "vocab.json":
        if not isinstance(data, dict):
            raise ModelDirError(f"{path} is not a token -> id mapping; {_REDO}")
        return len(data), max(len(data), max(_int_ids(data.values()), default=-1) + 1)
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, (dict, list)):
        raise ModelDirError(f"{path} has no model.vocab; it is not a tokenizers file: {_REDO}")
    known = set(vocab) if isinstance(vocab, dict) else set()
    added = [t for t in data.get("added_tokens") or [] if isinstance(t, dict)]
    n = len(vocab) + sum(1 for t in added if t.get("content") not in known)
    ids = _int_ids(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1]
    return n, max(ids + _int_ids(t.get("id") for t in added), default=-1) + 1


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


def _json_object(path: Path, not_object: str) -> dict:
    """A tokenizer file that must hold a JSON object; anything else is one ModelDirError line naming the file
    (`not_object` says what a non-object is not)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(not_object)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelDirError(f"{path} is not valid JSON ({_one_line(exc)}); {_REDO}") from None
    return data


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
