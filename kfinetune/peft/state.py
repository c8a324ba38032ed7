"""Adapter-only files: `save` and `load` the adapters of a model.

An adapter file holds the injected weights, the base weights the adapters
keep trainable (e.g. a classifier head), and every config needed to
re-apply them, keyed by variable path (never by layer index: keras-hub's
`save_lora_weights` keys by index, and its keys shift between builds). It
also records a format version and a fingerprint of the base architecture,
and refuses a file made for another architecture or a newer format.
"""

import hashlib
import json

import h5py
import keras
import numpy as np

from kfinetune import matcher
from kfinetune.peft import adapter_record
from kfinetune.peft import injected
from kfinetune.peft import trainable_flags
from kfinetune.peft.applying import apply
from kfinetune.peft.compiled_functions import reset_compiled_functions
from kfinetune.peft.merging import merge
from kfinetune.peft.named_adapters import delete
from kfinetune.peft.named_adapters import set_active
from kfinetune.peft.peft_model import PEFTModel
from kfinetune.peft.peft_model import require

FORMAT = "kfinetune-adapters"
# Version 2: LoRA variants (rsLoRA, DoRA, PiSSA, OLoRA, Gaussian init) in
# the configs. A file without them is still written as version 1, which
# kfinetune versions before the variants read.
FORMAT_VERSION = 2


def fingerprint(model):
    """A hash of the base architecture: the path, shape and dtype of every
    base weight (injected weights excluded)."""
    base = model.base if isinstance(model, PEFTModel) else model
    added = {
        id(v) for w in injected.wrappers(base) for v in injected.own_weights(w)
    }
    entries = sorted(
        (v.path, tuple(v.shape), str(v.dtype))
        for v in base.weights
        if id(v) not in added
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _saved_variables(model):
    variables = {
        id(v): v
        for w in injected.wrappers(model.base)
        for v in injected.own_weights(w)
    }
    for v in model.trainable_weights:
        variables.setdefault(id(v), v)
    by_path = {}
    for v in variables.values():
        if v.path in by_path:
            raise ValueError(
                f"Two weights share the path {v.path!r} (the model holds two "
                "copies of a layer, e.g. a teacher and a student), so an "
                "adapter file keyed by path would mix them up. Give the "
                "copies different names before applying adapters."
            )
        by_path[v.path] = v
    return by_path


def save(model, filepath):
    """Saves only the adapters of a model, and what is needed to re-apply
    them.

    A PiSSA or OLoRA adapter is saved relative to the *original* base
    weights: the file holds its factors (trained and initial) and its
    config, and `load` applies it to the original base, recomputing the
    residual there, so save and load a model whose base was not
    modified otherwise. Files with LoRA variants (rsLoRA, DoRA, PiSSA,
    OLoRA, Gaussian init) are format version 2; older kfinetune refuses
    them by their version.

    Args:
        model: a model returned by `kfinetune.peft.apply`.
        filepath: the file to write (HDF5; `.h5` by convention).

    Example:

    ```python
    kfinetune.peft.save(model, "sentiment.adapter.h5")
    ```
    """
    require(model)
    variables = _saved_variables(model)
    with h5py.File(filepath, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = _version(model)
        f.attrs["fingerprint"] = fingerprint(model)
        f.attrs["adapters"] = json.dumps(
            adapter_record.serialize(model.adapters)
        )
        f.attrs["active"] = json.dumps(model.active)
        group = f.create_group("weights")
        for path, variable in variables.items():
            group.create_dataset(path, data=np.asarray(variable.numpy()))


def _version(model):
    """The oldest format that holds `model`'s adapters."""
    variant = any(
        getattr(record.config, "variant", False)
        for record in model.adapters.values()
    )
    return FORMAT_VERSION if variant else 1


def _read(filepath):
    try:
        f = h5py.File(filepath, "r")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(
            f"{str(filepath)!r} is not an adapter file written by "
            f"`kfinetune.peft.save` ({error}). Received: filepath={filepath!r}"
        ) from error
    with f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(
                f"{str(filepath)!r} is not an adapter file written by "
                "`kfinetune.peft.save`. "
                f"Received: format={f.attrs.get('format')!r}"
            )
        version = int(f.attrs["format_version"])
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{str(filepath)!r} uses adapter file format {version}, newer "
                f"than this kfinetune reads ({FORMAT_VERSION}): upgrade "
                f"kfinetune. Received: format_version={version}"
            )
        weights = {}
        f["weights"].visititems(
            lambda path, item: (
                weights.__setitem__(path, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
        return {
            "fingerprint": f.attrs["fingerprint"],
            "adapters": json.loads(f.attrs["adapters"]),
            "active": json.loads(f.attrs["active"]),
            "weights": weights,
        }


def load(model, filepath):
    """Re-applies the adapters saved in a file to a model and restores
    their weights.

    The model must have the base architecture the file was saved from (a
    freshly built base model, or a model returned by `apply` that does not
    already hold adapters of the same names). Nothing is changed when the
    file does not fit.

    Args:
        model: a built base model, or a model returned by `apply`.
        filepath: a file written by `kfinetune.peft.save`.

    Returns:
        The `PEFTModel` to use.

    Raises:
        ValueError: the file is not an adapter file, is of a newer format,
            was made for another architecture, or its weights' paths or
            shapes don't fit the model.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.load(model, "sentiment.adapter.h5")
    ```
    """
    state = _read(filepath)
    expected = fingerprint(model)
    if state["fingerprint"] != expected:
        raise ValueError(
            f"{str(filepath)!r} was saved from a model of another "
            "architecture (its fingerprint of layer paths and shapes "
            "differs from this model's). Load it into the kind of model it "
            f"was saved from. Received: fingerprint={state['fingerprint']!r}, "
            f"model fingerprint={expected!r}"
        )
    existing = model.adapters if isinstance(model, PEFTModel) else {}
    taken = [a["name"] for a in state["adapters"] if a["name"] in existing]
    if taken:
        raise ValueError(
            f"The model already has adapters named {taken}: delete them "
            f"first. Received: filepath={str(filepath)!r}"
        )
    base = model.base if isinstance(model, PEFTModel) else model
    flags = trainable_flags.capture(base)
    applied = []
    result = model
    try:
        for record in state["adapters"]:
            config = keras.saving.deserialize_keras_object(record["config"])
            result = apply(result, config, record["name"])
            applied.append(record["name"])
        variables = {v.path: v for v in result.weights}
        for path, value in state["weights"].items():
            variable = variables.get(path)
            if variable is None:
                raise ValueError(
                    f"{str(filepath)!r} holds a weight at {path!r}, which this "
                    "model does not have. Similar paths: "
                    f"{matcher.similar_paths(variables, path)}. "
                    f"Received: filepath={str(filepath)!r}"
                )
            if tuple(variable.shape) != value.shape:
                raise ValueError(
                    f"{str(filepath)!r} holds {path!r} with shape "
                    f"{value.shape}, but the model's has shape "
                    f"{tuple(variable.shape)}. "
                    f"Received: filepath={str(filepath)!r}"
                )
    except Exception:
        for name in reversed(applied):
            delete(result, name)
        trainable_flags.restore(flags)
        reset_compiled_functions(base)
        raise
    for path, value in state["weights"].items():
        variables[path].assign(value)
    set_active(result, state["active"])
    for record in state["adapters"]:
        # Only active adapters stay merged (files from before that rule
        # may record an inactive one as merged).
        if record["merged"] and record["name"] in result.active:
            merge(result, record["name"])
    return result
