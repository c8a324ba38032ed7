"""`load_hf` and `save_hf`: Hugging Face PEFT LoRA adapters of encoder
(BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v3),
Llama and GPT-2 models, read into and written from keras-hub models.

The names of each architecture's modules, and the keras-hub layers that
hold the same weights, are in `kfinetune.peft.hf_names`.
"""

import json
import pathlib
import re

import keras
import numpy as np

from kfinetune import matcher
from kfinetune import walk
from kfinetune.layers import lora as lora_layer
from kfinetune.peft import hf_names
from kfinetune.peft import injected
from kfinetune.peft.applying import apply
from kfinetune.peft.lora import LoRAConfig
from kfinetune.peft.peft_model import PEFTModel

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# PEFT's key suffixes of the LoRA factors A and B. A `Linear` holds them as
# `nn.Linear` modules (`.weight`), an `Embedding` as plain parameters, with
# no `.weight`; PEFT silently skips a key in the other form.
_FACTOR_KEYS = ("lora_A.weight", "lora_B.weight")
_EMBEDDING_FACTOR_KEYS = ("lora_embedding_A", "lora_embedding_B")
# DoRA's magnitude of a `Linear`, one per output feature (a parameter of
# PEFT's `DoraLinearLayer`, saved without `.weight`).
_MAGNITUDE_KEY = "lora_magnitude_vector"
# PEFT's `init_lora_weights` values that change the base weights (PiSSA,
# OLoRA, CorDA, LoftQ): such an adapter is relative to a residual base
# kfinetune does not have.
_MUTATING_INITS = ("pissa", "olora", "corda", "loftq")
# The `LoraConfig` values kfinetune reproduces exactly; anything else in an
# adapter's config is refused. `fan_in_fan_out` is the architecture's own
# (PEFT sets it to `True` for GPT-2's `Conv1D`, see `hf_names.Family`).
_NEUTRAL = {
    "bias": "none",
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
    """Loads a Hugging Face PEFT LoRA adapter into a keras-hub model.

    Reads the `adapter_config.json` and `adapter_model.safetensors` that
    PEFT's `save_pretrained` writes, maps PEFT's module names and
    PyTorch's weights onto the keras-hub layers and kernel shapes, and
    applies the adapter with `kfinetune.peft.apply`, so that merging,
    saving and export work as for any kfinetune adapter. These
    architectures are supported, each as its PyTorch base model or task
    model (see `kfinetune.peft.hf_names`):

    - BERT: `BertModel` for a keras-hub `BertBackbone`,
      `BertForSequenceClassification` for a `BertTextClassifier`; the
      attention, feed-forward, pooler and word-embedding layers (PEFT's
      `lora_embedding_A` and `lora_embedding_B` for the latter). The
      weights of `modules_to_save` (the `classifier` head, as `logits`)
      are loaded too and stay trainable. Build the model with
      `kfinetune.presets` (exact GELU, as PyTorch's BERT).
    - Llama: `LlamaModel` for a `LlamaBackbone` (keras-hub loads a Hugging
      Face folder as its subclass `Llama3Backbone`), `LlamaForCausalLM`
      for a `LlamaCausalLM`; `q_proj`, `k_proj`, `v_proj`, `o_proj`,
      `gate_proj`, `up_proj` and `down_proj`, with grouped-query
      attention.
    - GPT-2: `GPT2Model` for a `GPT2Backbone`, `GPT2LMHeadModel` for a
      `GPT2CausalLM`; `attn.c_attn`, `attn.c_proj`, `mlp.c_fc` and
      `mlp.c_proj`. PEFT's LoRA on the fused `c_attn` has one `A` for
      query, key and value and one `B` whose output rows are
      `[query; key; value]`: each of keras-hub's three layers gets a LoRA
      with a copy of `A` and its rows of `B`, which adds up to exactly
      PEFT's update.
    - RoBERTa, XLM-RoBERTa, DistilBERT, ALBERT, ELECTRA and DeBERTa-v3:
      the base model (`RobertaModel`, `DistilBertModel`, `AlbertModel`,
      ...) for the keras-hub backbone, and (but for ELECTRA, which has no
      keras-hub classifier) the `...ForSequenceClassification` for
      keras-hub's text classifier, whose head is PyTorch's layer for
      layer; the attention and feed-forward projections, the word
      embeddings, ALBERT's pooler and embedding projection, ELECTRA's
      embedding projection, and the head in `modules_to_save`
      (RoBERTa's `classifier.dense` and `out_proj` as `pooled_dense` and
      `logits`, DistilBERT's `pre_classifier` and `classifier`,
      DeBERTa's `pooler.dense` and `classifier`). Build the backbone with
      `kfinetune.presets.backbone`, which keeps the checkpoint's own
      activation and conventions.

    The attention kernels of keras-hub are `(hidden, heads, head_dim)`;
    the factors are reshaped to them as keras-hub's converters reshape
    the weights. The logits then match PyTorch's within 1e-5.

    rsLoRA (`use_rslora: true`) and DoRA (`use_dora: true`, its
    `lora_magnitude_vector` reshaped to the kernel's output axes) load
    as `LoRAConfig(use_rslora=True)` and `LoRAConfig(use_dora=True)`.
    An adapter trained from PiSSA, OLoRA, CorDA or LoftQ weights without
    PEFT's conversion (`path_initial_model_for_weight_conversion`) is
    relative to a modified base and is refused; the converted one is a
    plain LoRA and loads.

    Args:
        model: a built keras-hub backbone or task of one of these
            architectures (or a `PEFTModel` around one), with the
            adapter's base weights.
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
            options kfinetune does not reproduce (biases, per-layer
            ranks, DoRA on embeddings, an unconverted PiSSA or OLoRA
            adapter); it was made for another architecture, or for
            the task model where `model` is a backbone (or the reverse),
            or `model` is a task of a family whose adapters are read for
            the backbone only; a
            module has no keras-hub counterpart or cannot take LoRA; a
            weight's shape does not fit the model (another base model, or
            a rank that disagrees with the config); `base_model` differs
            from the adapter's. The model is then unchanged.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.load_hf(model, "sentiment-lora")
    model.predict(["what a day"])

    backbone = keras_hub.models.LlamaBackbone.from_preset("hf-llama-dir")
    model = keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)
    model = kfinetune.peft.load_hf(model, "llama-lora")
    ```
    """
    directory = pathlib.Path(directory)
    config, tensors = _read(directory)
    base = model.base if isinstance(model, PEFTModel) else model
    family, task = _family(base, model)
    _check_peft_type(config, directory)
    by_path = {s.path: s.layer for s in walk.sites(base) if s.path}
    # PyTorch module -> its factors, and the keras-hub paths of its parts.
    factors, parts, saved = {}, {}, {}
    for key, value in tensors.items():
        module, kind = _split_key(key, directory)
        paths = _to_keras(family, module, task, key)
        for path in paths:
            if path not in by_path:
                raise ValueError(
                    f"The adapter's module {module!r} has no layer in the "
                    f"model (expected {path!r}): the adapter was made for "
                    f"another model. Received: directory={str(directory)!r}"
                )
        if kind == "saved":
            if len(paths) != 1:
                raise ValueError(
                    f"The adapter keeps {module!r} in modules_to_save, which "
                    f"keras-hub splits into {paths}: kfinetune cannot load "
                    f"it. Received: directory={str(directory)!r}"
                )
            saved.setdefault(paths[0], {})[key.rsplit(".", 1)[1]] = value
        else:
            factors.setdefault(module, {})[kind] = value
            parts[module] = paths
    _check_options(config, family, directory)
    if base_model is not None:
        _check_base_name(config, base_model)
    if not factors:
        raise ValueError(
            f"{WEIGHTS_FILE} holds no LoRA weights. "
            f"Received: directory={str(directory)!r}"
        )
    rank = config["r"]
    use_dora = bool(config.get("use_dora", False))
    layers = {
        path: _innermost(by_path[path])
        for paths in parts.values()
        for path in paths
    }
    for module, paths in parts.items():
        _check_factors(
            paths,
            [layers[p] for p in paths],
            factors[module],
            rank,
            directory,
            use_dora,
        )
    for path, weights in saved.items():
        _check_saved(path, by_path[path], weights, family, directory)
    peft_model = apply(
        model,
        LoRAConfig(
            rank=rank,
            alpha=config["lora_alpha"],
            dropout=config.get("lora_dropout", 0.0),
            use_rslora=bool(config.get("use_rslora", False)),
            use_dora=use_dora,
            targets=sorted(layers),
            trainable=sorted(saved),
        ),
        name=name,
    )
    for module, paths in parts.items():
        a, b = (factors[module][k] for k in _factor_keys(layers[paths[0]]))
        # The rows of a fused module's B are its parts' outputs, in order.
        ends = np.cumsum([_dims(layers[path])[1] for path in paths])
        for path, end, start in zip(paths, ends, [0, *ends[:-1]], strict=True):
            wrapper = _wrapper_of(peft_model.base, layers[path], name)
            wrapper.lora_a.assign(np.reshape(a.T, wrapper.lora_a.shape))
            wrapper.lora_b.assign(
                np.reshape(b[start:end].T, wrapper.lora_b.shape)
            )
            if use_dora:
                magnitude = factors[module][_MAGNITUDE_KEY][start:end]
                wrapper.lora_magnitude.assign(
                    np.reshape(magnitude, wrapper.lora_magnitude.shape)
                )
    for path, weights in saved.items():
        layer = by_path[path]
        # `Conv1D` weights are already `(in, out)`, as Keras kernels.
        weight = weights["weight"]
        layer.kernel.assign(weight if family.conv1d else weight.T)
        if "bias" in weights:
            layer.bias.assign(weights["bias"])
    return peft_model


def save_hf(
    model, directory, name=None, base_model=None, convert_to_lora=False
):
    """Writes a LoRA adapter in Hugging Face PEFT's format.

    The reverse of `load_hf`: `adapter_config.json` and
    `adapter_model.safetensors`, which PEFT's
    `PeftModel.from_pretrained(base, directory)` loads into the PyTorch
    model of the same checkpoint: `BertForSequenceClassification`,
    `LlamaForCausalLM` or `GPT2LMHeadModel` for a keras-hub task,
    `BertModel`, `LlamaModel` or `GPT2Model` for a backbone. Base layers
    the adapter keeps trainable go to `modules_to_save` (BERT's `logits`
    head as `classifier`).

    GPT-2's query, key and value are one PyTorch `Conv1D`, `c_attn`, so
    kfinetune's separate LoRAs on them (each `A_i` of rank `r` and `B_i`)
    are written as one LoRA of `c_attn` of rank `k * r`, for the `k` of
    them the adapter has: `A` is the `A_i` stacked and `B` is block
    diagonal, `B_i` in the rows of its layer's output and the columns of
    its `A_i`, zero elsewhere (also in the rows of an unadapted one of
    the three). `B @ A` is then exactly the three updates side by side.
    When the three share one `A` (as `load_hf` gives them, before any
    training), `c_attn` keeps rank `r`: that `A` and the `B_i` stacked,
    PEFT's own factors, so an adapter from PEFT comes back unchanged.
    PEFT has one rank per adapter, so when the ranks of the modules
    differ (`c_attn`'s `k * r` and the other modules' `r`), every
    module's factors are padded with zeros to the largest rank, `R`, and
    `lora_alpha` is written as `alpha * R / r`: the scale `alpha / rank`
    and every update stay exactly kfinetune's. (The padding also stays
    zero when PEFT trains on: its gradients are zero.) `load_hf` reads
    such a folder back as LoRAs of rank `R` with the same outputs.
    (With rsLoRA, whose scale is `alpha / sqrt(rank)`, `lora_alpha` is
    `alpha * sqrt(R / r)`.)

    rsLoRA and DoRA adapters are written with PEFT's `use_rslora` and
    `use_dora` flags, DoRA's magnitudes as `lora_magnitude_vector`. A
    PiSSA or OLoRA adapter holds its update relative to the residual
    kernels it left in the base, which a PyTorch user does not have:
    as PEFT's `save_pretrained(...,
    path_initial_model_for_weight_conversion=...)`, pass
    `convert_to_lora=True` to write it as a plain LoRA of rank `2 * r`
    relative to the *original* base, `A' = [A, A_0]` and
    `B' = [B; -B_0]`, so `s·A'·B' = s·A·B - s·A_0·B_0`, the change from
    the original weights (`lora_alpha` doubled, or multiplied by
    `sqrt(2)` with rsLoRA, to keep the scale).

    Args:
        model: a `kfinetune.peft.PEFTModel` around a keras-hub BERT, Llama
            or GPT-2 backbone or task, with a LoRA adapter.
        directory: the folder to write (created when missing).
        name: the adapter to write. Defaults to the only adapter.
        base_model: written as `base_model_name_or_path`, e.g.
            `"sentence-transformers/all-MiniLM-L6-v2"`. Defaults to `None`.
        convert_to_lora: write a PiSSA or OLoRA adapter as a plain LoRA
            of twice the rank relative to the original base weights
            (required for them, refused for other adapters). Defaults to
            `False`.

    Returns:
        The `pathlib.Path` of `directory`.

    Raises:
        ValueError: `model` has no such LoRA adapter, it is merged, it is
            PiSSA or OLoRA without `convert_to_lora=True` (or
            `convert_to_lora=True` is given for another adapter), or it
            adapts or trains a layer that has no PyTorch counterpart (for
            GPT-2, training a part of `c_attn`, which PEFT could only keep
            whole). Nothing is written then.

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
    config = record.config
    residual = config.init in lora_layer.RESIDUAL_INITS
    if residual and not convert_to_lora:
        raise ValueError(
            f"The adapter {name!r} was initialised with {config.init!r}, "
            "so the model's kernels hold the residual of its initial "
            "update, not the original weights a PEFT user loads it onto. "
            "Pass `convert_to_lora=True` to write it as a plain LoRA of "
            "rank 2 * r relative to the original weights (PEFT's "
            "`path_initial_model_for_weight_conversion`). "
            f"Received: convert_to_lora={convert_to_lora!r}"
        )
    if convert_to_lora and not residual:
        raise ValueError(
            "`convert_to_lora` converts PiSSA and OLoRA adapters, and "
            f"{name!r} was initialised with {config.init!r}: it is a plain "
            "LoRA already. Received: convert_to_lora=True"
        )
    base = model.base
    family, task = _family(base, model)
    sites = [s for s in walk.sites(base) if s.path]
    by_path = {s.path: s.layer for s in sites}
    paths = {id(s.layer): s.path for s in sites}
    # PyTorch module -> the keras-hub paths of its parts, and their factors
    # in PyTorch's layout: A `(rank, in)`, B `(out, rank)`.
    parts, factors, magnitudes = {}, {}, {}
    for wrapper in injected.wrappers(base, name):
        path = paths[id(wrapper.base_layer)]
        module, parts[module] = _to_torch(family, path, task)
        a, b = _matrices(wrapper.lora_a, wrapper.lora_b)
        if residual:
            # The change from the original weights: s·(A·B - A0·B0).
            a0, b0 = _matrices(wrapper.lora_a_init, wrapper.lora_b_init)
            a, b = np.concatenate([a, a0], 1), np.concatenate([b, -b0])
        factors.setdefault(module, {})[path] = (a.T, b.T)
        if config.use_dora:
            magnitudes.setdefault(module, {})[path] = np.reshape(
                keras.ops.convert_to_numpy(wrapper.lora_magnitude), (-1,)
            )
    saved = {}
    for site in matcher.match(sites, record.trainable):
        if injected.is_injected(site.layer):
            continue
        module, module_parts = _to_torch(family, site.path, task)
        if len(module_parts) != 1:
            raise ValueError(
                f"The adapter trains {site.path!r}, a part of the PyTorch "
                f"module {module!r} ({', '.join(module_parts)}), which "
                "PEFT's modules_to_save could only hold whole. Received: "
                f"path={site.path!r}"
            )
        saved.update(_saved_weights(family, module, site.layer))
    saved.update(_whole_heads(family, task, saved, sites))
    fused = {
        module: _fuse(parts[module], found, by_path)
        for module, found in factors.items()
    }
    rank = max((a.shape[0] for a, _ in fused.values()), default=config.rank)
    tensors = {}
    for module, (a, b) in fused.items():
        # Zero rows of A and columns of B up to the adapter's one rank.
        a = np.pad(a, ((0, rank - a.shape[0]), (0, 0)))
        b = np.pad(b, ((0, 0), (0, rank - b.shape[1])))
        key_a, key_b = _factor_keys(_innermost(by_path[parts[module][0]]))
        tensors[f"{_PREFIX}{module}.{key_a}"] = a
        tensors[f"{_PREFIX}{module}.{key_b}"] = b
    for module, found in magnitudes.items():
        tensors[f"{_PREFIX}{module}.{_MAGNITUDE_KEY}"] = _fuse_magnitudes(
            parts[module], found, by_path
        )
    tensors.update({f"{_PREFIX}{k}": v for k, v in saved.items()})
    # The scale of every module stays kfinetune's at PEFT's one rank.
    scaled_alpha = config.scale * (
        float(np.sqrt(rank)) if config.use_rslora else rank
    )
    if abs(scaled_alpha - round(scaled_alpha)) < 1e-9:
        scaled_alpha = float(round(scaled_alpha))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": family.task_type if task else "FEATURE_EXTRACTION",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": (
            int(scaled_alpha) if scaled_alpha.is_integer() else scaled_alpha
        ),
        "lora_dropout": config.dropout,
        "target_modules": sorted(fused),
        "modules_to_save": _modules_to_save(family, task, saved),
        "inference_mode": True,
        "init_lora_weights": True,
        "revision": None,
        # The variants' flags after `bias`, where kfinetune has always
        # written them: the files of an unchanged adapter stay byte for
        # byte (a repeated key keeps its first place).
        "bias": _NEUTRAL["bias"],
        "use_rslora": config.use_rslora,
        "use_dora": config.use_dora,
        **_NEUTRAL,
        "fan_in_fan_out": family.conv1d,
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


def _saved_weights(family, module, layer):
    """The PyTorch weights of `layer`, a layer of `modules_to_save`."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    saved = {f"{module}.weight": kernel if family.conv1d else kernel.T}
    if getattr(layer, "bias", None) is not None:
        saved[f"{module}.bias"] = keras.ops.convert_to_numpy(layer.bias)
    return saved


def _head_of(family, task, module):
    """The PyTorch module PEFT keeps for `module` when it is a part of a
    task's head: the head as a whole (RoBERTa's `classifier`, which holds
    `dense` and `out_proj`); `None` for any other module."""
    paths = family.keras_paths(module, task) if task else None
    if paths and any(family.is_head(path) for path in paths):
        return module.split(".")[0]
    return None


def _whole_heads(family, task, saved, sites):
    """The weights of the rest of the task's head when `saved` has a part
    of it: PEFT keeps a head whole and would leave an unsaved part at its
    new, random initial value (and matches `modules_to_save` by the end
    of a name, so DistilBERT's `classifier` takes `pre_classifier` too)."""
    modules = {key.rsplit(".", 1)[0] for key in saved}
    if not any(_head_of(family, task, module) for module in modules):
        return {}
    layers = {site.path: site.layer for site in sites}
    found = {}
    for torch_name, keras_name in family.head_modules:
        if torch_name not in modules:
            found.update(_saved_weights(family, torch_name, layers[keras_name]))
    return found


def _modules_to_save(family, task, saved):
    """PEFT's `modules_to_save`: the kept modules, each head whole."""
    modules = {key.rsplit(".", 1)[0] for key in saved}
    kept = {_head_of(family, task, module) or module for module in modules}
    return sorted(kept) or None


def _matrices(a, b):
    """LoRA factors in Keras's layout as `(d_in, rank)` and `(rank, d_out)`
    NumPy matrices."""
    a = keras.ops.convert_to_numpy(a)
    b = keras.ops.convert_to_numpy(b)
    return np.reshape(a, (-1, a.shape[-1])), np.reshape(b, (b.shape[0], -1))


def _fuse_magnitudes(paths, found, by_path):
    """One PyTorch module's DoRA magnitude from those of its parts, in the
    order of its output. A part without DoRA gets its kernel's column
    norms, with which DoRA leaves it as it is."""
    pieces = []
    for path in paths:
        if path in found:
            pieces.append(found[path])
            continue
        layer = _innermost(by_path[path])
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        d_in, _ = _dims(layer)
        in_axes = [0]
        if isinstance(layer, keras.layers.EinsumDense):
            from kfinetune.layers import einsum

            in_axes, _ = einsum.kernel_axes(layer.equation)
        norm = np.sqrt(np.sum(np.square(kernel), axis=tuple(in_axes)))
        pieces.append(np.reshape(norm, (-1,)))
    return np.concatenate(pieces).astype("float32")


def _fuse(paths, found, by_path):
    """One PyTorch module's `(A, B)` from the LoRAs `found` on its parts
    `paths`: the `A`s stacked and the `B`s block diagonal (see `save_hf`);
    or, when the parts share one `A` (as `load_hf` gives them), that `A`
    and the `B`s stacked, PEFT's own factors."""
    present = [path for path in paths if path in found]
    a_parts = [found[path][0] for path in present]
    shared = all(np.array_equal(a_parts[0], a) for a in a_parts[1:])
    a = a_parts[0] if shared else np.concatenate(a_parts)
    rows = [_dims(_innermost(by_path[path]))[1] for path in paths]
    b = np.zeros((sum(rows), a.shape[0]), "float32")
    row, column = 0, 0
    for path, size in zip(paths, rows, strict=True):
        if path in found:
            part = found[path][1]
            b[row : row + size, column : column + part.shape[1]] = part
            column += 0 if shared else part.shape[1]
        row += size
    return a, b


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


def _family(base, model):
    """`base`'s `hf_names.Family`, and whether it is a task (not a bare
    backbone)."""
    backbone = getattr(base, "backbone", base)
    family = hf_names.family_of(backbone)
    if family is None:
        names = ", ".join(f.backbone.__name__ for f in hf_names.FAMILIES)
        raise ValueError(
            f"`model` must be a keras-hub {names}, or a task built on one "
            "(e.g. from `kfinetune.presets.text_classifier`). Received: "
            f"model={getattr(model, 'name', model)!r} ({type(base).__name__})"
        )
    task = backbone is not base
    if task and not family.tasks:
        raise ValueError(
            f"kfinetune reads and writes PEFT adapters of the {family.name} "
            "base model only: keras-hub has no task of this family whose "
            "head is PyTorch's, so PEFT could not hold it. Pass the "
            "backbone (`model.backbone`). Received: "
            f"model={getattr(model, 'name', model)!r} ({type(base).__name__})"
        )
    return family, task


def _check_peft_type(config, directory):
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise ValueError(
            "Only LoRA adapters (peft_type 'LORA') can be loaded from PEFT. "
            f"Received: peft_type={peft_type!r} (in {directory})"
        )


def _check_options(config, family, directory):
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(_MUTATING_INITS):
        raise ValueError(
            f"The adapter was trained from {init!r} weights, which PEFT "
            "subtracts from the base model: its factors are relative to "
            "that residual base, not to the checkpoint kfinetune loads. "
            "Save it in PEFT with `save_pretrained(..., "
            "path_initial_model_for_weight_conversion=...)`, which "
            "converts it to a plain LoRA of the original weights, and load "
            f"that. Received: init_lora_weights={init!r} (in {directory})"
        )
    for key, neutral in {**_NEUTRAL, "fan_in_fan_out": family.conv1d}.items():
        value = config.get(key, neutral)
        if value != neutral and not (neutral is None and not value):
            raise ValueError(
                f"kfinetune's LoRA does not reproduce the PEFT option "
                f"`{key}` (it must be {neutral!r} for {family.name}). "
                f"Received: {key}={value!r} (in {directory})"
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
    factor = "|".join(
        map(re.escape, (*_FACTOR_KEYS, *_EMBEDDING_FACTOR_KEYS, _MAGNITUDE_KEY))
    )
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


def _to_keras(family, module, task, key):
    paths = family.keras_paths(module, task)
    if paths is not None:
        return paths
    other = hf_names.guess(module)
    if other is not None and other is not family:
        raise ValueError(
            f"The adapter targets {key!r}, a module of a {other.name} model "
            f"(keras-hub {other.backbone.__name__}): it was made for another "
            f"architecture than this {family.name} model. "
            f"Received: module={module!r}"
        )
    if other is family:
        kinds = ("backbone", "task model") if task else ("task", "backbone")
        raise ValueError(
            f"The adapter targets {key!r}, a module of the PyTorch "
            f"{kinds[0]}, but `model` is a keras-hub {kinds[1]}: load it "
            f"into the keras-hub {kinds[0]}. Received: module={module!r}"
        )
    supported = [torch for torch, _ in family.head_modules if task] + [
        (family.task_prefix if task else "") + torch
        for torch, _ in family.modules
    ]
    raise ValueError(
        f"The adapter targets {key!r}, which has no keras-hub {family.name} "
        f"counterpart that kfinetune can load (supported: "
        f"{', '.join(supported)}). Received: module={module!r}"
    )


def _to_torch(family, path, task):
    found = family.torch_module(path, task)
    if found is None:
        raise ValueError(
            f"The layer {path!r} has no PyTorch {family.name} counterpart in "
            f"PEFT's format, so PEFT could not load its weights. Received: "
            f"path={path!r}"
        )
    return found


def _innermost(layer):
    while isinstance(layer, injected.WRAPPERS):
        layer = layer.layer
    return layer


def _factor_keys(layer):
    """PEFT's key suffixes of A and B for the (innermost) `layer`."""
    if isinstance(layer, keras.layers.Embedding):
        return _EMBEDDING_FACTOR_KEYS
    return _FACTOR_KEYS


def _dims(layer):
    """`(d_in, d_out)` of the (innermost) `layer`, flattened as PyTorch's
    `(out, in)` weight has them."""
    if isinstance(layer, keras.layers.Embedding):
        return layer.input_dim, layer.output_dim
    shape = tuple(layer.kernel.shape)
    if isinstance(layer, keras.layers.EinsumDense):
        from kfinetune.layers import einsum

        a_axes, b_axes = einsum.kernel_axes(layer.equation)
        d_in = int(np.prod([shape[i] for i in a_axes]))
        d_out = int(np.prod([shape[i] for i in b_axes]))
        return d_in, d_out
    return shape


def _wrapper_of(base, layer, name):
    for wrapper in injected.wrappers(base, name):
        if isinstance(wrapper, lora_layer.LoRA) and wrapper.base_layer is layer:
            return wrapper
    raise AssertionError(f"LoRA did not wrap {layer.name!r}")


def _check_factors(paths, layers, found, rank, directory, use_dora=False):
    """Checks one PyTorch module's factors against its keras-hub layers
    (several for a fused module, in the order of its output)."""
    label = " + ".join(repr(path) for path in paths)
    key_a, key_b = _factor_keys(layers[0])
    if use_dora:
        refused = lora_layer.why_not_variant(layers[0], use_dora=True)
        if refused:
            raise ValueError(
                f"The adapter is DoRA on {label}, which kfinetune's DoRA "
                f"does not adapt: {refused[1]}. "
                f"Received: use_dora=True (in {directory})"
            )
    expected_keys = {key_a, key_b} | ({_MAGNITUDE_KEY} if use_dora else set())
    if _MAGNITUDE_KEY in found and not use_dora:
        raise ValueError(
            f"The adapter holds a DoRA magnitude for {label}, but its "
            "config does not set `use_dora`. "
            f"Received: directory={str(directory)!r}"
        )
    if set(found) != expected_keys:
        layer_kind = (
            "an embedding"
            if isinstance(layers[0], keras.layers.Embedding)
            else "a projection"
        )
        raise ValueError(
            f"The adapter holds {sorted(found)} for {label}, not "
            f"{' and '.join(sorted(expected_keys))} (PEFT's keys for "
            f"{layer_kind}{' with DoRA' if use_dora else ''}). "
            f"Received: directory={str(directory)!r}"
        )
    for path, layer in zip(paths, layers, strict=True):
        reason = lora_layer.why_not_wrappable(layer)
        if reason:
            raise ValueError(
                f"The adapter targets {path!r}, which kfinetune's LoRA "
                f"cannot wrap: {reason}. Received: "
                f"directory={str(directory)!r}"
            )
    dims = [_dims(layer) for layer in layers]
    # The parts of a fused module share its input. PEFT's embedding
    # factors are (rank, vocabulary) and (dim, rank).
    d_in, d_out = dims[0][0], sum(d for _, d in dims)
    expected = {
        key_a: (rank, d_in),
        key_b: (d_out, rank),
        _MAGNITUDE_KEY: (d_out,),
    }
    for kind, value in found.items():
        if tuple(value.shape) != expected[kind]:
            raise ValueError(
                f"{kind} of {label} has shape {tuple(value.shape)}, but the "
                f"model's layer and the adapter's rank r={rank} need "
                f"{expected[kind]}: the adapter was made for another base "
                "model or its config disagrees with its weights. "
                f"Received: directory={str(directory)!r}"
            )


def _check_saved(path, layer, weights, family, directory):
    kernel = getattr(layer, "kernel", None)
    if kernel is None or "weight" not in weights:
        raise ValueError(
            f"The adapter's modules_to_save weights for {path!r} do not fit "
            f"the model's layer. Received: directory={str(directory)!r}"
        )
    shape = tuple(kernel.shape)
    expected = {"weight": shape if family.conv1d else shape[::-1]}
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
