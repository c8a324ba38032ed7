"""`layer_groups`: a model's weights in ordered groups, bottom to top."""

import re

from kfinetune import checks
from kfinetune import compat
from kfinetune import matcher

# The names keras-hub gives the transformer blocks of its backbones: one
# stack of `transformer_layer_<i>` (BERT, ELECTRA, DistilBERT, RoBERTa,
# XLM-RoBERTa, GPT-2, Llama, Mistral, Qwen), `decoder_block_<i>` (Gemma) or
# `disentangled_attention_encoder_layer_<i>` (DeBERTa-v3), or an encoder and
# a decoder stack (`transformer_encoder_layer_<i>` and
# `transformer_decoder_layer_<i>` in BART, T5 and Whisper; `encoder_layer_<i>`
# and `decoder_layer_<i>` in T5Gemma); ALBERT's shared layers are
# `group_<g>_inner_layer_<j>`, each run at several depths.
BLOCK_NAME = re.compile(
    r"(?:transformer_layer"
    r"|(?:transformer_|disentangled_attention_)?"
    r"(?P<stack>encoder|decoder)_(?:layer|block))"
    r"_(?P<index>\d+)"
    r"|group_(?P<group>\d+)_inner_layer_(?P<inner>\d+)"
)
_BLOCK = re.compile(rf"(?:^|/)(?:{BLOCK_NAME.pattern})(?:/|$)")
# The stacks of an encoder-decoder, bottom first: blocks of no named stack,
# then the encoder's (it reads the input), then the decoder's (it writes
# the output).
_STACKS = (None, "encoder", "decoder")


class LayerGroups:
    """An ordered mapping of group name to variable paths, bottom to top.

    What `LayerwiseOptimizer` gives learning rates to and what
    `GradualUnfreezing` unfreezes, one group at a time from the top. Build
    it with `layer_groups`.

    Attributes:
        names: the group names, bottom first.
    """

    def __init__(self, groups, variables=()):
        self._groups = {name: tuple(paths) for name, paths in groups.items()}
        # The weights that may train, when built from a model (not
        # serialized): those trainable when the groups were made. A
        # LayerwiseOptimizer keeps state for all of them, so weights frozen
        # later (gradual unfreezing) unfreeze without a rebuild, while
        # weights frozen for good (a LoRA model's base) cost no state.
        paths = {p for group in self._groups.values() for p in group}
        self.variables = [
            v for v in variables if v.path in paths and v.trainable
        ]
        owner = {}
        for name, paths in self._groups.items():
            if not paths:
                raise ValueError(
                    f"Group {name!r} is empty. Received: {name}=[]"
                )
            for path in paths:
                if path in owner:
                    raise ValueError(
                        f"The weight {path!r} is in two groups, "
                        f"{owner[path]!r} and {name!r}. "
                        f"Received: groups={list(self._groups)}"
                    )
                owner[path] = name
        self._owner = owner

    @property
    def names(self):
        return list(self._groups)

    def __getitem__(self, name):
        if name not in self._groups:
            raise KeyError(
                f"No group named {name!r}. Groups: {self.names}. "
                f"Received: name={name!r}"
            )
        return self._groups[name]

    def __iter__(self):
        return iter(self._groups)

    def __len__(self):
        return len(self._groups)

    def items(self):
        return self._groups.items()

    def group_of(self, path):
        """The name of the group holding the weight at `path`, or None."""
        return self._owner.get(path)

    def merge(self, num_groups):
        """Merges neighbouring groups into `num_groups` contiguous groups of
        near-equal size (by count of groups), bottom to top; each merged
        group is named after its first and last member."""
        checks.in_range(
            "num_groups",
            num_groups,
            1,
            len(self),
            high_closed=True,
            integer=True,
        )
        names = self.names
        bounds = [
            round(i * len(names) / num_groups) for i in range(num_groups + 1)
        ]
        merged = {}
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            members = names[start:stop]
            label = (
                members[0]
                if len(members) == 1
                else (f"{members[0]}..{members[-1]}")
            )
            merged[label] = [p for n in members for p in self._groups[n]]
        return LayerGroups(merged, self.variables)

    def get_config(self):
        return {name: list(paths) for name, paths in self._groups.items()}

    def __repr__(self):
        sizes = ", ".join(f"{n}: {len(p)}" for n, p in self._groups.items())
        return f"LayerGroups({sizes})"


def as_layer_groups(groups):
    """`groups` as a `LayerGroups` (a dict from a config is converted), or
    a clear error."""
    if isinstance(groups, dict):
        groups = LayerGroups(groups)
    if not isinstance(groups, LayerGroups) or not len(groups):
        raise ValueError(
            "`groups` must be a non-empty LayerGroups from "
            "`kfinetune.optimizers.layer_groups(model)`. "
            f"Received: groups={groups!r}"
        )
    return groups


def layer_groups(model, groups=None):
    """Splits a model's weights into ordered groups, bottom to top.

    - With `groups`, a dict `{name: pattern}` (or list of patterns), bottom
      group first, each weight goes to the one group whose pattern matches
      its path (`kfinetune.matcher`: exact path, else `re.fullmatch`);
      frozen weights may be left out (e.g. a LoRA model's base).
    - For keras-hub transformers (weights under a block named as in
      `BLOCK_NAME`: `transformer_layer_<i>/`, Gemma's `decoder_block_<i>/`,
      DeBERTa-v3's `disentangled_attention_encoder_layer_<i>/`):
      `embeddings` (every weight before the first block), `block_0` ...
      `block_<n-1>`, and `head` (every weight after the last block: the
      final norm, pooler and output layer). A tied token embedding (BERT,
      GPT-2, Gemma, Qwen, BART), which is also the LM head, stays in
      `embeddings`; an untied output projection (the
      `reverse_embeddings` of Llama and Mistral) is in `head`.
    - ALBERT runs each of its shared layers (`group_<g>_inner_layer_<j>`)
      at several depths: a group is a shared layer, not a depth, so the
      usual `num_groups=1` gives `embeddings`, `block_0` (the one layer
      every depth runs) and `head`. A layer-wise decay then has one block
      to decay, and gradual unfreezing unfreezes every depth at once, as
      the weights are the same; an adapter in the shared layer (LoRA, IA3,
      bottleneck, prefix) is shared across depth with it, in its group.
    - With an encoder and a decoder stack (BART): `embeddings` (both
      stacks' embeddings), `encoder_block_0` ... , `decoder_block_0` ... ,
      then `head` if weights follow the last decoder block (BART has none:
      its top group is the last decoder block).
    - Otherwise, one group per top-level layer with weights, in the model's
      layer order (for functional models, graph order: inputs first). Merge
      neighbours with `.merge(num_groups)`.

    Weights of parameter-efficient methods (LoRA, adapters) go to the
    group of the layer they adapt: their paths extend its path.

    Args:
        model: a built Keras model (or a `kfinetune.peft` model).
        groups: optional `{name: pattern or [patterns]}`.

    Returns:
        A `LayerGroups`.

    Raises:
        ValueError: a pattern matches nothing, a weight matches two groups,
            a weight matches no group, or the model has no weights.

    Example:

    ```python
    groups = kfinetune.optimizers.layer_groups(model)
    groups.names  # ['embeddings', 'block_0', ..., 'block_5', 'head']
    ```
    """
    variables = _variables(model)
    if not variables:
        raise ValueError(
            "`model` has no weights: build it first. "
            f"Received: model={getattr(model, 'name', model)!r}"
        )
    paths = checks.unique_weight_paths(variables, "group weights")
    if groups is not None:
        trainable = [v.path for v in variables if v.trainable]
        return LayerGroups(_by_patterns(paths, trainable, groups), variables)
    if any(_BLOCK.search(p) for p in paths):
        return LayerGroups(_by_transformer_block(paths), variables)
    return LayerGroups(_by_top_level_layer(model, variables), variables)


def _variables(model):
    seen, result = set(), []
    for v in model.weights:
        if id(v) not in seen:
            seen.add(id(v))
            result.append(v)
    return result


def _by_patterns(paths, trainable, groups):
    if not isinstance(groups, dict) or not groups:
        raise ValueError(
            "`groups` must be a non-empty dict of group name to pattern. "
            f"Received: groups={groups!r}"
        )
    result = {}
    owner = {}
    for name, patterns in groups.items():
        matched = matcher.match_paths(paths, patterns)
        if not matched:
            raise ValueError(
                f"The pattern of group {name!r} matches no weight. Some "
                f"weight paths: {paths[:5]}. Received: {name}={patterns!r}"
            )
        for path in matched:
            if owner.get(path, name) != name:
                raise ValueError(
                    f"The weight {path!r} matches two groups, "
                    f"{owner[path]!r} and {name!r}. "
                    f"Received: groups={groups!r}"
                )
            owner[path] = name
        result[name] = matched
    missing = [p for p in trainable if p not in owner]
    if missing:
        raise ValueError(
            f"{len(missing)} trainable weights match no group, e.g. "
            f"{missing[:5]}: every trainable weight needs exactly one group "
            f"(frozen ones may be left out). Received: groups={list(groups)}"
        )
    return result


def _by_transformer_block(paths):
    blocks = {}
    for path in paths:
        match = _BLOCK.search(path)
        if match:
            blocks.setdefault(_block_key(match), []).append(path)
    # A stack's name prefixes its blocks' only when there are two stacks
    # (BART's `encoder_block_0` and `decoder_block_0`); Gemma's one stack of
    # `decoder_block_<i>` gives `block_<i>`, as the others.
    two_stacks = len({stack for stack, _, _ in blocks}) > 1
    # ALBERT's groups of several inner layers: `block_<g>_<j>`.
    inner = any(j for _, _, j in blocks)
    names = {
        (stack, index, j): (
            f"{_STACKS[stack]}_block_{index}"
            if two_stacks and _STACKS[stack]
            else f"block_{index}" + (f"_{j}" if inner else "")
        )
        for stack, index, j in sorted(blocks)
    }
    group = {p: names[key] for key, members in blocks.items() for p in members}
    positions = [i for i, p in enumerate(paths) if p in group]
    first, last = positions[0], positions[-1]
    result = {"embeddings": []}
    result.update({names[key]: [] for key in sorted(blocks)})
    result["head"] = []
    below = None
    for i, path in enumerate(paths):
        if path in group:
            below = group[path]
        elif i > last or _is_output_projection(path):
            group[path] = "head"
        elif i < first or "embedding" in path:
            # BART's decoder embeddings come after the encoder's blocks.
            group[path] = "embeddings"
        else:
            # Between two stacks: e.g. an encoder's final norm tops it.
            group[path] = below
        result[group[path]].append(path)
    return {name: members for name, members in result.items() if members}


def _block_key(match):
    """`(stack, index, inner)` of a block name matched by `BLOCK_NAME`, in
    the order the blocks first run: an ALBERT group's inner layers are
    `(0, group, inner)`."""
    if match["group"] is not None:
        return (0, int(match["group"]), int(match["inner"]))
    return (_STACKS.index(match["stack"]), int(match["index"]), 0)


def _is_output_projection(path):
    # An untied output projection (Llama's, Mistral's) is the LM head
    # although it lives in the token embedding layer; with int8 it has a
    # `reverse_embeddings_scale` too.
    return path.rsplit("/", 1)[-1].startswith("reverse_embeddings")


def _by_top_level_layer(model, variables):
    layers = (
        model.layers
        if compat.is_functional(model)
        else [layer for layer in getattr(model, "layers", [])]
    )
    result = {}
    owner = {}
    for layer in layers:
        for v in layer.weights:
            if id(v) not in owner:
                owner[id(v)] = layer.name
                result.setdefault(layer.name, []).append(v.path)
    # Weights held directly by the model (not by a layer) form a last group.
    rest = [v.path for v in variables if id(v) not in owner]
    if rest:
        result[f"{model.name}_own"] = rest
    return result
