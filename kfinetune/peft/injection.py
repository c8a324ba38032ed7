"""Injects a method's layers into a `PEFTModel`'s base, atomically: plans
every change, builds every new layer, swaps them in, and puts everything
back when any step fails."""

import contextlib
import dataclasses

import keras

from kfinetune import compat
from kfinetune import matcher
from kfinetune import walk
from kfinetune.layers import einsum
from kfinetune.peft import adapter_state
from kfinetune.peft import injected
from kfinetune.peft import quantized_heads
from kfinetune.peft import trainable_flags
from kfinetune.peft.adapter_record import AdapterRecord


@dataclasses.dataclass
class Plan:
    """What `inject` will change, and what it skips and why."""

    injections: list
    skipped: list


def inject(model, config, name, plan=None):
    """Applies `config` to the base of `model` as the adapter `name` and
    makes it the active adapter.

    Args:
        model: a `PEFTModel` without an adapter called `name`.
        config: a `PEFTConfig`.
        name: the adapter's name.
        plan: `make_plan(model.base, config, name)`, when already made.

    Returns:
        The `PEFTModel` to use: `model`, or a new one around a rebuilt
        graph when a top-level node of a plain functional or Sequential
        base was replaced.

    Raises:
        ValueError: nothing matches the targets, or the method cannot wrap
            any matched layer. The model is then unchanged.
    """
    base = model.base
    if plan is None:
        plan = make_plan(base, config, name)
    strategy = compat.distribution_strategy(base)
    flags = trainable_flags.capture(base)
    swapped = []
    built = []
    try:
        with strategy.scope():
            for inj in plan.injections:
                built.append((inj.site, _build(inj, name)))
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
        if in_graph:
            with strategy.scope():
                # A functional graph runs its nodes, not its attributes:
                # rebuild it with the wrappers as nodes, sharing every
                # other layer (and so every weight).
                rebuilt = keras.models.clone_model(
                    base,
                    clone_function=lambda layer: in_graph.get(id(layer), layer),
                )
                model = _rewrap(model, rebuilt)
    except Exception:
        for site, wrapper in reversed(swapped):
            put_back(site, wrapper, site.layer)
        for _, wrapper in reversed(built):
            # PiSSA and OLoRA wrote the residual into the kernel when built.
            release(wrapper)
        trainable_flags.restore(flags)
        raise
    # Adapters below an int8 LM head train on its gradient (also when
    # `PEFTModel.from_config` re-applies them).
    quantized_heads.pass_gradients(model.base)
    model.adapters[name] = AdapterRecord(
        config=config,
        trainable=config.resolved_trainable(model.base),
        skipped=plan.skipped,
    )
    adapter_state.activate(model, [name])
    return model


def release(wrapper):
    """Gives the base layer back what building `wrapper` took from it (the
    initial update of PiSSA and OLoRA), before the wrapper leaves."""
    if hasattr(wrapper, "release"):
        wrapper.release()


def put_back(site, wrapper, layer):
    """Puts `layer` back where `wrapper` replaced it at `site`."""
    if site.graph_node:
        compat.replace_node(site.parent, wrapper, layer)
    else:
        compat.set_sublayer(site.parent, site.attribute, site.index, layer)


def remove(base, wrapper):
    """Takes `wrapper` out of `base`, putting back the layer it wraps."""
    for site in walk.sites(base):
        if site.layer is wrapper:
            put_back(site, wrapper, wrapper.layer)
            return


def remove_all(base):
    """Takes every injected layer out of `base`.

    Returns:
        The base to use: `base`, or a rebuilt graph when wrappers were
        top-level nodes of a plain functional or Sequential base (`put_back`
        would make such a graph run the old layers, but it would still save
        the wrappers as its nodes).
    """
    rebuildable = compat.is_rebuildable(base)
    in_graph = set()
    for site in walk.sites(base):
        if (
            rebuildable
            and site.parent is base
            and isinstance(site.layer, injected.WRAPPERS)
        ):
            in_graph.add(id(site.layer))
    for wrapper in injected.wrappers(base):
        if id(wrapper) not in in_graph:
            remove(base, wrapper)
    if not in_graph:
        return base

    def unwrapped(layer):
        while isinstance(layer, injected.WRAPPERS):
            layer = layer.layer
        return layer

    with compat.distribution_strategy(base).scope():
        return keras.models.clone_model(base, clone_function=unwrapped)


def _rewrap(model, base):
    """A `PEFTModel` like `model`, around a rebuilt base."""
    new = type(model)(
        base,
        base_config=model.base_config,
        build_config=model.build_config,
        name=model.name,
    )
    new.adapters.update(model.adapters)
    new.active = list(model.active)
    return new


def make_plan(base, config, name):
    """Checks `config` against `base` and lists the layers to inject.

    Raises:
        ValueError: nothing matches the targets, or the method cannot wrap
            any matched layer.
    """
    config.check(base)
    sites = walk.sites(base)
    candidates = injected.candidates(base)
    duplicates = walk.duplicate_paths(candidates)
    patterns = config.targets or config.default_targets(base)
    matched = matcher.match(candidates, patterns)
    clash = sorted({s.path for s in matched} & set(duplicates))
    if clash:
        raise ValueError(
            "These layer paths belong to more than one layer (two copies of "
            "a model, e.g. a teacher and a student), so a pattern cannot "
            "tell them apart: apply the method to each copy before "
            f"combining them. Paths: {clash[:5]}. Received: targets="
            f"{patterns!r}"
        )
    holders = {}
    for site in sites:
        holders.setdefault(id(site.layer), []).append(site)
    rebuildable = compat.is_rebuildable(base)
    injections, skipped = [], []
    refused = set()
    for site in matched:
        shared = holders[id(site.layer)]
        if len(shared) > 1:
            if id(site.layer) in refused:
                continue
            refused.add(id(site.layer))
            # E.g. a masked LM head holding its backbone's token embedding
            # for the output projection: a wrapper put in one place would
            # be bypassed in the other.
            parents = sorted(s.parent.name for s in shared)
            skipped.append(
                (
                    site.path,
                    f"held by {len(shared)} layers ({', '.join(parents)}), "
                    "and a wrapper would replace it in one of them only",
                )
            )
            continue
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
        detail = ""
        if skipped:
            detail = (
                " Matched but not wrappable: "
                + "; ".join(
                    f"{path} ({reason})" for path, reason in skipped[:5]
                )
                + "."
            )
        similar = matcher.similar_paths([s.path for s in candidates], patterns)
        raise ValueError(
            f"No layer that {type(config).__name__} can wrap matches the "
            f"targets.{detail} Similar layer paths: {similar}. "
            f"Received: targets={patterns!r}"
        )
    return Plan(injections, skipped)


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
    if isinstance(layer, injected.WRAPPERS):
        return _input_shape(layer.layer)
    if isinstance(layer, keras.layers.Embedding):
        return (None, None)
    if isinstance(layer, keras.layers.EinsumDense):
        return einsum.input_shape(layer.equation, layer.kernel.shape)
    kernel = getattr(layer, "kernel", None)
    if kernel is not None:
        return (None, kernel.shape[0])
    return None
