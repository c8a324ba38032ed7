"""Applies parameter-efficient methods to a model, and switches, merges and
removes them afterwards.

Every structural change resets the model's compiled train / test / predict
functions: Keras would otherwise keep running the traced graph of the old
structure (design.md fact 5).
"""

import contextlib
import re

import keras

from kfinetune import compat
from kfinetune.layers import lora
from kfinetune.peft import config as config_lib
from kfinetune.peft import matching
from kfinetune.peft.ia3 import IA3Config
from kfinetune.peft.lora import LoRAConfig
from kfinetune.peft.peft_model import PEFTModel
from kfinetune.peft.prefix import PrefixConfig

_NAME = re.compile(r"[A-Za-z0-9_]+")
# Methods whose updates fold into the base weights (prefix tuning folds
# its reparameterisation MLP into plain prefixes).
MERGEABLE = (LoRAConfig, IA3Config, PrefixConfig)


def apply(model, config, name="default"):
    """Applies a parameter-efficient method to a built Keras model.

    The base model's layers are frozen, except those matched by the
    config's `trainable` patterns (by default a keras-hub classifier's
    `logits` layer); the new adapter is made active and trainable. The
    change is atomic: when anything fails, the model is exactly as before
    (structure, weights, trainable flags).

    The layers are injected into `model` in place; use the returned model,
    which also saves and reloads with its adapters.

    Args:
        model: a built Keras model (functional, Sequential, subclassed, a
            keras-hub backbone or task), or a model returned by `apply`
            (to add a second, named adapter).
        config: a `kfinetune.peft.LoRAConfig` or `AdapterConfig`.
        name: the adapter's name, letters, digits and `_`. Defaults to
            `"default"`.

    Returns:
        A `kfinetune.peft.PEFTModel` wrapping `model`.

    Raises:
        ValueError: the model is not built, the name is taken or invalid, no
            layer matches the targets, or the method cannot wrap any
            matched layer.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model = kfinetune.peft.apply(model, kfinetune.peft.LoRAConfig(rank=8))
    kfinetune.peft.summary(model)
    ```
    """
    if not isinstance(config, config_lib.PEFTConfig):
        raise ValueError(
            "`config` must be a kfinetune.peft config such as "
            f"`LoRAConfig(...)`. Received: config={config!r}"
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            "`name` must be a non-empty string of letters, digits and _. "
            f"Received: name={name!r}"
        )
    peft_model = model if isinstance(model, PEFTModel) else None
    base = peft_model.base if peft_model else model
    if not isinstance(base, keras.Model) or not base.built or not base.weights:
        raise ValueError(
            "`model` must be a built Keras model: call it on data or "
            "`model.build(input_shape)` first. "
            f"Received: model={getattr(model, 'name', model)!r} "
            f"(built={getattr(model, 'built', None)})"
        )
    if peft_model and name in peft_model.adapters:
        raise ValueError(
            f"An adapter named {name!r} is already applied to this model "
            f"(adapters: {list(peft_model.adapters)}). Pick another name or "
            f"`kfinetune.peft.delete(model, {name!r})` first. "
            f"Received: name={name!r}"
        )

    plan = _plan(base, config, name)
    if peft_model is None:
        # Recorded before anything changes: `from_config` rebuilds this
        # and re-applies the adapters.
        origin = {
            "base_config": keras.saving.serialize_keras_object(base),
            "build_config": base.get_build_config(),
            "name": None,
        }
    else:
        origin = {
            "base_config": peft_model.base_config,
            "build_config": peft_model.build_config,
            "name": peft_model.name,
        }
    strategy = compat.distribution_strategy(base)
    flags = trainable_flags(base)
    swapped = []
    try:
        with strategy.scope():
            built = [(inj.site, _build(inj, name)) for inj in plan.injections]
        rewired = {id(inj.site.layer) for inj in plan.injections if inj.rewire}
        in_graph = {
            id(s.layer): w
            for s, w in built
            if s.graph_node and id(s.layer) not in rewired
        }
        for site, wrapper in built:
            if id(site.layer) in rewired:
                compat.replace_node(site.parent, site.layer, wrapper)
                swapped.append((site, wrapper))
            elif not site.graph_node:
                compat.set_sublayer(
                    site.parent, site.attribute, site.index, wrapper
                )
                swapped.append((site, wrapper))
        with strategy.scope():
            if in_graph:
                # A functional graph runs its nodes, not its attributes:
                # rebuild it with the wrappers as nodes, sharing every
                # other layer (and so every weight).
                base = keras.models.clone_model(
                    base,
                    clone_function=lambda layer: in_graph.get(id(layer), layer),
                )
            if peft_model is None or in_graph:
                # A rebuilt graph is a new base, and needs a new wrapper.
                previous = peft_model
                peft_model = PEFTModel(base, **origin)
                if previous:
                    peft_model.adapters.update(previous.adapters)
                    peft_model.active = list(previous.active)
    except Exception:
        for site, wrapper in reversed(swapped):
            _put_back(site, wrapper, site.layer)
        restore_trainable_flags(flags)
        raise
    peft_model.adapters[name] = {
        "config": config,
        "trainable": config.resolved_trainable(base),
        "merged": False,
        "skipped": plan.skipped,
    }
    set_active(peft_model, [name])
    return peft_model


def _put_back(site, wrapper, layer):
    """Puts `layer` back where `wrapper` replaced it."""
    if site.graph_node:
        compat.replace_node(site.parent, wrapper, layer)
    else:
        compat.set_sublayer(site.parent, site.attribute, site.index, layer)


def trainable_flags(model):
    """Every layer's and variable's trainable flag, to restore on failure."""
    layers = [(s.layer, s.layer.trainable) for s in matching.sites(model)]
    variables = [(v, v.trainable) for v in model.weights]
    return layers, variables


def restore_trainable_flags(flags):
    layers, variables = flags
    # Layers first: a layer's flag propagates to its variables.
    for layer, value in layers:
        layer.trainable = value
    for variable, value in variables:
        variable.trainable = value


def _plan(base, config, name):
    config.check(base)
    sites = matching.sites(base)
    candidates = matching.candidates(base)
    duplicates = matching.duplicate_paths(candidates)
    patterns = config.targets or config.default_targets(base)
    matched = matching.match(candidates, patterns)
    clash = sorted({s.path for s in matched} & set(duplicates))
    if clash:
        raise ValueError(
            "These layer paths belong to more than one layer (two copies of "
            "a model, e.g. a teacher and a student), so a pattern cannot "
            "tell them apart: apply the method to each copy before "
            f"combining them. Paths: {clash[:5]}. Received: targets="
            f"{patterns!r}"
        )
    rebuildable = compat.is_rebuildable(base)
    injections, skipped = [], []
    for site in matched:
        planned, reason = config.injections(site, name, sites)
        for inj in planned or []:
            node = inj.site
            top = rebuildable and node.parent is base
            if node.graph_node and not (inj.rewire or top):
                reason = (
                    "a node of the functional graph of "
                    f"{node.parent.name!r} ({type(node.parent).__name__}), "
                    "which cannot be rebuilt with the layer replaced (only "
                    "the top level of plain functional and Sequential "
                    "models can)"
                )
        if reason:
            skipped.append((site.path, reason))
        else:
            injections.extend(planned)
    if not injections:
        paths = [s.path for s in candidates]
        detail = ""
        if skipped:
            detail = (
                " Matched but not wrappable: "
                + "; ".join(
                    f"{path} ({reason})" for path, reason in skipped[:5]
                )
                + "."
            )
        raise ValueError(
            f"No layer that {type(config).__name__} can wrap matches the "
            f"targets.{detail} Similar layer paths: "
            f"{matching.similar_paths(paths, patterns)}. "
            f"Received: targets={patterns!r}"
        )
    return config_lib.Plan(injections, skipped)


def _build(injection, name):
    wrapper = injection.make()
    wrapper.adapter_name = name
    # Build inside the target's name scopes, so the new variables' paths
    # extend the target's path (".../query/lora_default/lora_a") and stay
    # unique across blocks.
    with contextlib.ExitStack() as stack:
        for part in injection.site.path.split("/"):
            stack.enter_context(keras.name_scope(part))
        wrapper.build(_input_shape(injection.site.layer))
    return wrapper


def _input_shape(layer):
    if isinstance(layer, matching.WRAPPERS):
        return _input_shape(layer.layer)
    if isinstance(layer, keras.layers.Embedding):
        return (None, None)
    kernel = getattr(layer, "kernel", None)
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_input_shape(layer)
    if kernel is not None:
        return (None, kernel.shape[0])
    return None


def _einsum_input_shape(layer):
    x, kernel, _ = lora.einsum_parts(layer.equation)
    sizes = dict(zip(kernel, layer.kernel.shape, strict=True))
    return tuple(sizes.get(c) for c in x)


def own_weights(wrapper):
    """The weights a kfinetune wrapper adds (not those of the layer it
    wraps)."""
    inner = {id(v) for v in wrapper.layer.weights}
    return [v for v in wrapper.weights if id(v) not in inner]


def wrappers(model, name=None):
    """The kfinetune layers injected into `model` (for `name` only, when
    given), outermost first."""
    base = model.base if isinstance(model, PEFTModel) else model
    found = []
    for site in matching.sites(base):
        layer = site.layer
        if isinstance(layer, matching.WRAPPERS) and layer not in found:
            if name is None or getattr(layer, "adapter_name", None) == name:
                found.append(layer)
    return found


def _require(model, names=()):
    if not isinstance(model, PEFTModel):
        raise ValueError(
            "Expected a model returned by `kfinetune.peft.apply`. "
            f"Received: model={getattr(model, 'name', model)!r} "
            f"({type(model).__name__})"
        )
    for name in names:
        if name not in model.adapters:
            raise ValueError(
                f"No adapter named {name!r} on this model "
                f"(adapters: {list(model.adapters)}). Received: name={name!r}"
            )


def reset_compiled_functions(model):
    """Drops the traced train / test / predict functions of a model and of
    its base, so the next `fit`, `evaluate` or `predict` traces the current
    structure."""
    models = [model]
    if isinstance(model, PEFTModel):
        models.append(model.base)
    for m in models:
        m.train_function = None
        m.test_function = None
        m.predict_function = None


def set_active(model, names):
    """Makes the named adapters active: they compute and they train; every
    other adapter is disabled and frozen.

    Args:
        model: a model returned by `apply`.
        names: an adapter name or a list of names (several methods can be
            active together, e.g. LoRA and adapters). `[]` disables all.

    Example:

    ```python
    kfinetune.peft.set_active(model, "sentiment")
    ```
    """
    names = [names] if isinstance(names, str) else list(names)
    _require(model, names)
    model.active = names
    for wrapper in wrappers(model):
        wrapper.enabled = wrapper.adapter_name in names
    _refresh_trainable(model)
    reset_compiled_functions(model)


@contextlib.contextmanager
def disable(model):
    """Inside the block, the model computes exactly the base model's
    outputs; the active adapters come back afterwards.

    Example:

    ```python
    with kfinetune.peft.disable(model):
        base_predictions = model.predict(x)
    ```
    """
    _require(model)
    active = list(model.active)
    set_active(model, [])
    try:
        yield model
    finally:
        set_active(model, active)


def delete(model, name):
    """Removes an adapter: its layers leave the model (a merged LoRA is
    unmerged first, so the base weights are restored).

    Example:

    ```python
    kfinetune.peft.delete(model, "old_task")
    ```
    """
    _require(model, [name])
    unmerge(model, name)
    for wrapper in wrappers(model, name):
        for site in matching.sites(model.base):
            if site.layer is wrapper:
                _put_back(site, wrapper, wrapper.layer)
                break
    del model.adapters[name]
    set_active(model, [n for n in model.active if n != name])


def _mergeable_layers(model, name):
    _require(model)
    names = [name] if name else list(model.adapters)
    _require(model, names)
    return [
        w for n in names for w in wrappers(model, n) if hasattr(w, "merge")
    ], names


def merge(model, name=None):
    """Folds LoRA and IA3 updates into the base kernels, for inference at
    the base model's cost, and prefix tuning's reparameterisation MLP into
    plain prefixes. Outputs stay equal (within float rounding).

    Bottleneck adapters are non-linear and prompts are inputs: they stay as
    they are. A merged adapter does not train until `unmerge`.

    Args:
        model: a model returned by `apply`.
        name: the adapter to merge. Defaults to every adapter.

    Example:

    ```python
    kfinetune.peft.merge(model)
    model.export("saved_model")
    ```
    """
    layers, names = _mergeable_layers(model, name)
    for layer in layers:
        layer.merge()
    for n in names:
        if isinstance(model.adapters[n]["config"], MERGEABLE):
            model.adapters[n]["merged"] = True
    _refresh_trainable(model)
    reset_compiled_functions(model)


def unmerge(model, name=None):
    """Takes merged LoRA and IA3 updates out of the base kernels again,
    and computes prefixes with their MLP again."""
    layers, names = _mergeable_layers(model, name)
    for layer in layers:
        layer.unmerge()
    for n in names:
        model.adapters[n]["merged"] = False
    _refresh_trainable(model)
    reset_compiled_functions(model)


def _refresh_trainable(model):
    """Sets every trainable flag from the adapters' state: base layers are
    frozen unless a `trainable` pattern of an active adapter matches them or
    an enclosing layer; injected layers train when their adapter is active
    and not merged."""
    patterns = [p for n in model.active for p in model.adapters[n]["trainable"]]
    regexes = [re.compile(p) for p in patterns]

    def selected(path):
        return bool(path) and any(
            path == p or r.fullmatch(path)
            for p, r in zip(patterns, regexes, strict=True)
        )

    def visit(layer, keep, adapter_state):
        for child, *_ in matching.children(layer):
            if isinstance(child, matching.WRAPPERS):
                record = model.adapters.get(child.adapter_name, {})
                state = child.adapter_name in model.active and not record.get(
                    "merged", False
                )
                child.trainable = state
                visit(child, keep, state)
            elif matching.is_injected(child):
                child.trainable = bool(adapter_state)
            else:
                inside = keep or selected(child.path)
                has_children = any(True for _ in matching.children(child))
                if has_children:
                    child.trainable = True
                    visit(child, inside, adapter_state)
                else:
                    child.trainable = inside

    # A container's flag propagates to its sublayers; `visit` goes top down
    # and sets each sublayer again right after its container, so every
    # layer ends with its own rule.
    model.base.trainable = True
    visit(model.base, False, None)
