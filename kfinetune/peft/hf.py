"""`load_hf` and `save_hf`: Hugging Face PEFT LoRA adapters of BERT-family
models, read into and written from keras-hub models."""

import json
import pathlib
import re

import keras
import keras_hub
import numpy as np

from kfinetune import matcher
from kfinetune import walk
from kfinetune.layers import lora as lora_layer
from kfinetune.peft import injected
from kfinetune.peft.applying import apply
from kfinetune.peft.lora import LoRAConfig
from kfinetune.peft.peft_model import PEFTModel

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# PyTorch BERT module names (inside `BertModel`) and keras-hub layer paths.
_BACKBONE_MODULES = [
    (
        "encoder.layer.{i}.attention.self.{qkv}",
        "transformer_layer_{i}/self_attention_layer/{qkv}",
    ),
    (
        "encoder.layer.{i}.attention.output.dense",
        "transformer_layer_{i}/self_attention_layer/attention_output",
    ),
    (
        "encoder.layer.{i}.intermediate.dense",
        "transformer_layer_{i}/feedforward_intermediate_dense",
    ),
    (
        "encoder.layer.{i}.output.dense",
        "transformer_layer_{i}/feedforward_output_dense",
    ),
    ("pooler.dense", "pooled_dense"),
    ("embeddings.word_embeddings", "token_embedding"),
]
# The head of `BertForSequenceClassification`, and keras-hub's.
_HEAD_MODULES = [("classifier", "logits")]
_FIELDS = {"i": r"\d+", "qkv": "query|key|value"}
# PEFT's key suffixes of the LoRA factors A and B. A `Linear` holds them as
# `nn.Linear` modules (`.weight`), an `Embedding` as plain parameters, with
# no `.weight`; PEFT silently skips a key in the other form.
_FACTOR_KEYS = ("lora_A.weight", "lora_B.weight")
_EMBEDDING_FACTOR_KEYS = ("lora_embedding_A", "lora_embedding_B")
# The `LoraConfig` values kfinetune reproduces exactly; anything else in an
# adapter's config is refused.
_NEUTRAL = {
    "bias": "none",
    "use_rslora": False,
    "use_dora": False,
    "fan_in_fan_out": False,
    "rank_pattern": {},
    "alpha_pattern": {},
    "layers_to_transform": None,
    "layers_pattern": None,
    "lora_bias": False,
    "trainable_token_indices": None,
    "target_parameters": None,
}


def load_hf(model, directory, name="default", base_model=None):
    """Loads a Hugging Face PEFT LoRA adapter into a keras-hub BERT model.

    Reads the `adapter_config.json` and `adapter_model.safetensors` that
    PEFT's `save_pretrained` writes for a BERT-family PyTorch model
    (`BertModel`, or `BertForSequenceClassification` for a keras-hub
    `BertTextClassifier`), maps PEFT's module names and PyTorch's
    `(out, in)` weights onto the keras-hub layers and kernel shapes (the
    attention kernels are `(hidden, heads, head_dim)`; the word embeddings'
    factors are PEFT's `lora_embedding_A` and `lora_embedding_B`), and
    applies the adapter with `kfinetune.peft.apply`, so that merging, saving
    and export work as for any kfinetune adapter. The weights of
    `modules_to_save` (the `classifier` head, as `logits`) are loaded too
    and stay trainable.

    Build the model with `kfinetune.presets` (exact GELU, as PyTorch's
    BERT): then the logits match PyTorch's within 1e-5.

    Args:
        model: a built keras-hub `BertBackbone` or `BertTextClassifier` (or
            a `PEFTModel` around one), with the adapter's base weights.
        directory: the folder PEFT wrote.
        name: the adapter's name in kfinetune. Defaults to `"default"`.
        base_model: the Hugging Face name or path of `model`'s checkpoint,
            compared (by its last path component, ignoring case) with the
            adapter's `base_model_name_or_path`. Defaults to `None` (only
            the shapes are checked).

    Returns:
        A `kfinetune.peft.PEFTModel` (as `kfinetune.peft.apply`).

    Raises:
        ValueError: the files are missing; the adapter is not LoRA or uses
            options kfinetune does not reproduce (DoRA, rsLoRA, biases,
            per-layer ranks); a module has no keras-hub counterpart or
            cannot take LoRA; a weight's shape does not fit the model
            (another base model, or a rank that disagrees with the config);
            `base_model` differs from the adapter's. The model is then
            unchanged.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.load_hf(model, "sentiment-lora")
    model.predict(["what a day"])
    ```
    """
    directory = pathlib.Path(directory)
    config, tensors = _read(directory)
    base = model.base if isinstance(model, PEFTModel) else model
    backbone = _bert_backbone(base, "model", model)
    head = backbone is not base
    _check_config(config, directory)
    if base_model is not None:
        _check_base_name(config, base_model)
    rank = config["r"]
    by_path = {s.path: s.layer for s in walk.sites(base) if s.path}
    factors, saved = {}, {}
    for key, value in tensors.items():
        module, kind = _split_key(key, directory)
        path = _to_keras(module, head, key)
        if path not in by_path:
            raise ValueError(
                f"The adapter's module {module!r} has no layer in the model "
                f"(expected {path!r}): the adapter was made for another "
                f"model. Received: directory={str(directory)!r}"
            )
        if kind == "saved":
            saved.setdefault(path, {})[key.rsplit(".", 1)[1]] = value
        else:
            factors.setdefault(path, {})[kind] = value
    targets = sorted(factors)
    if not targets:
        raise ValueError(
            f"{WEIGHTS_FILE} holds no LoRA weights. "
            f"Received: directory={str(directory)!r}"
        )
    for path in targets:
        _check_factors(path, by_path[path], factors[path], rank, directory)
    for path in saved:
        _check_saved(path, by_path[path], saved[path], directory)
    layers = {path: _innermost(by_path[path]) for path in targets}
    peft_model = apply(
        model,
        LoRAConfig(
            rank=rank,
            alpha=config["lora_alpha"],
            dropout=config.get("lora_dropout", 0.0),
            targets=targets,
            trainable=sorted(saved),
        ),
        name=name,
    )
    for path in targets:
        wrapper = _wrapper_of(peft_model.base, layers[path], name)
        a, b = (factors[path][key] for key in _factor_keys(layers[path]))
        wrapper.lora_a.assign(np.reshape(a.T, wrapper.lora_a.shape))
        wrapper.lora_b.assign(np.reshape(b.T, wrapper.lora_b.shape))
    for path, weights in saved.items():
        layer = by_path[path]
        layer.kernel.assign(weights["weight"].T)
        if "bias" in weights:
            layer.bias.assign(weights["bias"])
    return peft_model


def save_hf(model, directory, name=None, base_model=None):
    """Writes a LoRA adapter in Hugging Face PEFT's format.

    The reverse of `load_hf`: `adapter_config.json` and
    `adapter_model.safetensors`, which PEFT's
    `PeftModel.from_pretrained(base, directory)` loads into the PyTorch
    model of the same checkpoint (`BertForSequenceClassification` for a
    `BertTextClassifier`, `BertModel` for a backbone). Base layers the
    adapter keeps trainable go to `modules_to_save` (the `logits` head as
    `classifier`).

    Args:
        model: a `kfinetune.peft.PEFTModel` around a keras-hub BERT model,
            with a LoRA adapter.
        directory: the folder to write (created when missing).
        name: the adapter to write. Defaults to the only adapter.
        base_model: written as `base_model_name_or_path`, e.g.
            `"sentence-transformers/all-MiniLM-L6-v2"`. Defaults to `None`.

    Returns:
        The `pathlib.Path` of `directory`.

    Raises:
        ValueError: `model` has no such LoRA adapter, it is merged, or it
            adapts or trains a layer that has no PyTorch BERT counterpart.
            Nothing is written then.

    Example:

    ```python
    kfinetune.peft.save_hf(
        model, "sentiment-lora",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
    )
    ```
    """
    if not isinstance(model, PEFTModel):
        raise ValueError(
            "`model` must be a kfinetune.peft.PEFTModel with a LoRA adapter "
            f"(from `kfinetune.peft.apply`). Received: model={model!r}"
        )
    if name is None:
        if len(model.adapters) != 1:
            raise ValueError(
                "The model has several adapters: pass `name`. Adapters: "
                f"{list(model.adapters)}. Received: name=None"
            )
        name = next(iter(model.adapters))
    record = model.adapters.get(name)
    if record is None or not isinstance(record.config, LoRAConfig):
        raise ValueError(
            f"`name` must name a LoRA adapter of the model (adapters: "
            f"{list(model.adapters)}). Received: name={name!r}"
        )
    if record.merged:
        raise ValueError(
            f"The adapter {name!r} is merged into the kernels: "
            f"`kfinetune.peft.unmerge(model)` first. Received: name={name!r}"
        )
    base = model.base
    backbone = _bert_backbone(base, "model", model)
    head = backbone is not base
    paths = {id(s.layer): s.path for s in walk.sites(base) if s.path}
    tensors, modules = {}, []
    for wrapper in injected.wrappers(base, name):
        module = _to_torch(paths[id(wrapper.base_layer)], head)
        d_in = int(np.prod(wrapper.lora_a.shape[:-1]))
        a = np.reshape(keras.ops.convert_to_numpy(wrapper.lora_a), (d_in, -1))
        b = np.reshape(
            keras.ops.convert_to_numpy(wrapper.lora_b), (wrapper.rank, -1)
        )
        # PEFT's A is (rank, d_in) and B is (d_out, rank), for embeddings
        # too (d_in is then the vocabulary): kfinetune's, transposed.
        key_a, key_b = _factor_keys(wrapper.base_layer)
        tensors[f"{_PREFIX}{module}.{key_a}"] = a.T
        tensors[f"{_PREFIX}{module}.{key_b}"] = b.T
        modules.append(module)
    saved = []
    candidates = [s for s in walk.sites(base) if s.path]
    for site in matcher.match(candidates, record.trainable):
        if injected.is_injected(site.layer):
            continue
        module = _to_torch(site.path, head)
        layer = site.layer
        tensors[f"{_PREFIX}{module}.weight"] = keras.ops.convert_to_numpy(
            layer.kernel
        ).T
        if getattr(layer, "bias", None) is not None:
            tensors[f"{_PREFIX}{module}.bias"] = keras.ops.convert_to_numpy(
                layer.bias
            )
        saved.append(module)
    config = record.config
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "SEQ_CLS" if head else "FEATURE_EXTRACTION",
        "base_model_name_or_path": base_model,
        "r": config.rank,
        "lora_alpha": config.rank if config.alpha is None else config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": sorted(modules),
        "modules_to_save": saved or None,
        "inference_mode": True,
        "init_lora_weights": True,
        "revision": None,
        **_NEUTRAL,
    }
    from safetensors.numpy import save_file

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        json.dumps(adapter_config, indent=2) + "\n"
    )
    save_file(
        {k: np.ascontiguousarray(v, "float32") for k, v in tensors.items()},
        str(directory / WEIGHTS_FILE),
        metadata={"format": "pt"},
    )
    return directory


def _read(directory):
    config_file = directory / CONFIG_FILE
    weights_file = directory / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise ValueError(
            f"`directory` must hold PEFT's {CONFIG_FILE} and {WEIGHTS_FILE} "
            f"(what `save_pretrained` writes). Received: "
            f"directory={str(directory)!r}"
        )
    from safetensors.numpy import load_file

    config = json.loads(config_file.read_text())
    return config, load_file(str(weights_file))


def _bert_backbone(base, argument, value):
    backbone = getattr(base, "backbone", base)
    if not isinstance(backbone, keras_hub.models.BertBackbone):
        raise ValueError(
            f"`{argument}` must be a keras-hub BertBackbone or a task built "
            "on one (e.g. from `kfinetune.presets.text_classifier`). "
            f"Received: {argument}={getattr(value, 'name', value)!r} "
            f"({type(base).__name__})"
        )
    return backbone


def _check_config(config, directory):
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise ValueError(
            "Only LoRA adapters (peft_type 'LORA') can be loaded from PEFT. "
            f"Received: peft_type={peft_type!r} (in {directory})"
        )
    for key, neutral in _NEUTRAL.items():
        value = config.get(key, neutral)
        if value != neutral and not (neutral is None and not value):
            raise ValueError(
                f"kfinetune's LoRA does not reproduce the PEFT option "
                f"`{key}` (it must be {neutral!r}). Received: "
                f"{key}={value!r} (in {directory})"
            )


def _check_base_name(config, base_model):
    def last(value):
        return str(value).rstrip("/").rsplit("/", 1)[-1].lower()

    recorded = config.get("base_model_name_or_path")
    if recorded and last(recorded) != last(base_model):
        raise ValueError(
            f"The adapter was made for {recorded!r}, not for this model. "
            f"Received: base_model={base_model!r}"
        )


def _split_key(key, directory):
    module = key[len(_PREFIX) :] if key.startswith(_PREFIX) else key
    module = module.replace(".modules_to_save", "")
    factor = "|".join(map(re.escape, _FACTOR_KEYS + _EMBEDDING_FACTOR_KEYS))
    match = re.fullmatch(rf"(.+)\.({factor})", module)
    if match:
        return match.groups()
    if ".lora_" in module:
        # E.g. `lora_embedding_A.weight`, which kfinetune's `save_hf` wrote
        # before it followed PEFT, and which PEFT does not load.
        raise ValueError(
            f"Unrecognised LoRA weight {key!r} in {WEIGHTS_FILE}: PEFT's "
            f"keys end in {' or '.join(_FACTOR_KEYS)}, or in "
            f"{' or '.join(_EMBEDDING_FACTOR_KEYS)} (no `.weight`) for an "
            f"embedding. Received: directory={str(directory)!r}"
        )
    match = re.fullmatch(r"(.+)\.(weight|bias)", module)
    if not match:
        raise ValueError(
            f"Unrecognised weight {key!r} in {WEIGHTS_FILE}. "
            f"Received: directory={str(directory)!r}"
        )
    return match.group(1), "saved"


def _regex(template):
    """A regular expression matching `template`'s names, one named group
    per `{field}`."""
    parts = re.split(r"\{(\w+)\}", template)
    return "".join(
        f"(?P<{part}>{_FIELDS[part]})" if i % 2 else re.escape(part)
        for i, part in enumerate(parts)
    )


def _translate(name, pairs, source):
    """`name` translated by the first `(torch, keras)` template pair whose
    `source` side (0 or 1) matches it, or `None`."""
    for pair in pairs:
        match = re.fullmatch(_regex(pair[source]), name)
        if match:
            return pair[1 - source].format(**match.groupdict())
    return None


def _to_keras(module, head, key):
    path = _translate(module, _HEAD_MODULES, 0) if head else None
    if path is None:
        inner = module
        if head:
            inner = module[len("bert.") :] if module.startswith("bert.") else ""
        path = _translate(inner, _BACKBONE_MODULES, 0)
    if path is None:
        raise ValueError(
            f"The adapter targets {key!r}, which has no keras-hub BERT "
            "counterpart that kfinetune can load (supported: the attention "
            "query/key/value/output, the feed-forward layers, the pooler "
            "and the word embeddings; the classifier as `modules_to_save`). "
            f"Received: module={module!r}"
        )
    return path


def _to_torch(path, head):
    module = _translate(path, _HEAD_MODULES, 1) if head else None
    if module is None:
        module = _translate(path, _BACKBONE_MODULES, 1)
        if module is not None and head:
            module = f"bert.{module}"
    if module is None:
        raise ValueError(
            f"The layer {path!r} has no PyTorch BERT counterpart in PEFT's "
            f"format, so PEFT could not load its weights. Received: "
            f"path={path!r}"
        )
    return module


def _innermost(layer):
    while isinstance(layer, injected.WRAPPERS):
        layer = layer.layer
    return layer


def _factor_keys(layer):
    """PEFT's key suffixes of A and B for the (innermost) `layer`."""
    if isinstance(layer, keras.layers.Embedding):
        return _EMBEDDING_FACTOR_KEYS
    return _FACTOR_KEYS


def _wrapper_of(base, layer, name):
    for wrapper in injected.wrappers(base, name):
        if isinstance(wrapper, lora_layer.LoRA) and wrapper.base_layer is layer:
            return wrapper
    raise AssertionError(f"LoRA did not wrap {layer.name!r}")


def _check_factors(path, layer, found, rank, directory):
    layer = _innermost(layer)
    key_a, key_b = _factor_keys(layer)
    if set(found) != {key_a, key_b}:
        layer_kind = (
            "an embedding"
            if isinstance(layer, keras.layers.Embedding)
            else "a projection"
        )
        raise ValueError(
            f"The adapter holds {sorted(found)} for {path!r}, not both "
            f"{key_a} and {key_b} (PEFT's keys for {layer_kind}). "
            f"Received: directory={str(directory)!r}"
        )
    reason = lora_layer.why_not_wrappable(layer)
    if reason:
        raise ValueError(
            f"The adapter targets {path!r}, which kfinetune's LoRA cannot "
            f"wrap: {reason}. Received: directory={str(directory)!r}"
        )
    if isinstance(layer, keras.layers.Embedding):
        d_in, d_out = layer.input_dim, layer.output_dim
    else:
        shape = tuple(layer.kernel.shape)
        if isinstance(layer, keras.layers.EinsumDense):
            from kfinetune.layers import einsum

            a_axes, b_axes = einsum.kernel_axes(layer.equation)
            d_in = int(np.prod([shape[i] for i in a_axes]))
            d_out = int(np.prod([shape[i] for i in b_axes]))
        else:
            d_in, d_out = shape
    # PEFT's embedding factors are (rank, vocabulary) and (dim, rank).
    expected = {key_a: (rank, d_in), key_b: (d_out, rank)}
    for kind, value in found.items():
        if tuple(value.shape) != expected[kind]:
            raise ValueError(
                f"{kind} of {path!r} has shape {tuple(value.shape)}, but the "
                f"model's layer and the adapter's rank r={rank} need "
                f"{expected[kind]}: the adapter was made for another base "
                "model or its config disagrees with its weights. "
                f"Received: directory={str(directory)!r}"
            )


def _check_saved(path, layer, weights, directory):
    kernel = getattr(layer, "kernel", None)
    if kernel is None or "weight" not in weights:
        raise ValueError(
            f"The adapter's modules_to_save weights for {path!r} do not fit "
            f"the model's layer. Received: directory={str(directory)!r}"
        )
    expected = {"weight": tuple(kernel.shape)[::-1]}
    if getattr(layer, "bias", None) is not None:
        expected["bias"] = tuple(layer.bias.shape)
    for key, value in weights.items():
        if tuple(value.shape) != expected.get(key):
            raise ValueError(
                f"The adapter's {key} of {path!r} (modules_to_save) has "
                f"shape {tuple(value.shape)}; the model's layer needs "
                f"{expected.get(key)} (another head, e.g. another number of "
                f"classes). Received: directory={str(directory)!r}"
            )
