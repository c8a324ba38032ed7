"""Every use of a private attribute of a public Keras class, in one place.

kfinetune uses only public APIs (`keras`, `keras.ops`, `keras_hub`,
`tensorflow`) except here. Each function below names the private attribute
it touches and why there is no public route; `tests/test_compat.py` checks
each against the installed versions, so an upgrade that breaks one fails
there first. (TensorFlow Addons imported private Keras modules, and Keras 3
stranded it: that is what this module guards against.)

Uses:
- `Layer._tracker` (`unlock` / `lock`): a built layer refuses new attributes
  that hold state ("You cannot add new elements of state"); Keras's own
  `enable_lora` unlocks it the same way.
- `Layer._layers`: the list of tracked sublayers; a replaced sublayer must
  leave it, or its weights stay in `layer.weights`.
- `Functional` (the class of functional models, and of keras-hub backbones
  and tasks) is not exported; `is_functional` recognises it by name in the
  class hierarchy, which needs no private attribute.
- `KerasVariable.value` is public, but the distribution strategy of a
  variable is only on the TensorFlow variable behind it
  (`Variable._value.distribute_strategy`, public on `tf.Variable` subclasses).
- `Functional._nodes_by_depth`, `_operations`, `_operations_by_depth` and
  `Node.operation`: the graph a functional model runs. A keras-hub backbone
  hands the embedding sequence and the padding mask to its transformer
  layers only through this graph, and rebuilding the graph would lose the
  backbone's class (`keras.models.clone_model` returns a plain
  `Functional`, without the task's preprocessor); prompt tuning makes the
  graph run a wrapper in place of a layer (`replace_node`).
- `BaseOptimizer._iterations` (`apply_counter`): the variable counting
  `apply` calls. With `gradient_accumulation_steps`, the public
  `iterations` is that count divided by the steps, a tensor that cannot be
  incremented, and Keras evaluates learning-rate schedules at the count
  itself; `LayerwiseOptimizer` owns `apply` and must do both.
- `BaseOptimizer._use_weight_decay` (`uses_weight_decay`): the weights
  excluded with the public `exclude_from_weight_decay` are kept only in
  private attributes (`_exclude_from_weight_decay`, a set of variable keys,
  and `_exclude_from_weight_decay_pattern`) and not in the optimizer's
  config, so `LayerwiseOptimizer`'s group copies, made from the config,
  would lose them; this method is Keras's own rule for reading them.
- `TransformerEncoder._self_attention_layer` (`self_attention_layer`): the
  attention layer of a keras-hub encoder, which has no public accessor;
  `kfinetune.inspect` reads its attention weights from it.
- `TransformerEncoder._feedforward_intermediate_dense`
  (`set_feedforward_activation`): keras-hub's `BertBackbone` builds its
  encoders with the tanh approximation of GELU and takes no activation
  argument (nor do keras-hub's other encoders, ALBERT's shared layers and
  DeBERTa-v3's `DisentangledAttentionEncoder` among them, which keep the
  same attribute); a Hugging Face checkpoint trained with another
  activation (exact GELU for BERT and ELECTRA) needs the feed-forward
  layer's activation replaced (`kfinetune.hf_encoders`).
- An instance's `call` (`recording_call`): keras-hub's `TransformerEncoder`
  hands its attention layer `return_attention_scores` only when its own
  caller asks, and a backbone's graph never asks; `kfinetune.inspect`
  shadows the bound `call` of one layer object for the duration of one
  eager forward pass (Keras's `Layer.__call__` runs `self.call`), and
  removes it afterwards.
- `Trainer._symbolic_build` (`build_for_fit`): builds a compiled model's
  loss trackers, compile metrics and optimizer from the shapes of one batch,
  without running the model. Keras calls it before tracing only under a
  distribution strategy; otherwise these variables are created inside the
  first trace of the train function, and TensorFlow then traces that
  function a second time. No public method builds compile metrics.
- `tf.__internal__.distribute.strategy_supports_no_merge_call`
  (`syncs_without_merge_call`): whether replicas sum gradients without
  `merge_call`, which cannot run inside a `cond`; Keras's
  `LossScaleOptimizer` checks the same before choosing its branch.
- `Layer._inbound_nodes` and `Node.arguments` (`call_arguments`): the
  symbolic tensors a layer was called with in a functional model, by
  argument name. The public `Layer.input` lists them flattened, without
  the names, so `CRF(emissions, mask=m)` and `CRF(emissions,
  chain_mask=m)` look alike; `CRFTagger` must call its CRF again with each
  in its place.
- `LlamaAttention._key_dense` / `_value_dense` (and the same in
  `CachedMistralAttention` and `QwenAttention`; `CachedGemmaAttention`
  names them `key_dense` / `value_dense`) (`key_value_projections`): the
  key/value projections of keras-hub's rotary decoder attention layers,
  whose output shapes are the shapes of the layer's key/value cache (key
  and value heads, head size); the layers keep these sizes under
  different private names, or not at all, and their `get_config` fails
  (Llama's reads a missing `rope_scaling_factor`). Prefix tuning writes
  its prefix into that cache.
- The gradient of the `XlaDynamicUpdateSlice` operation
  (`differentiable_slice_update`): on TensorFlow `keras.ops.slice_update`
  runs it, and TensorFlow registers no gradient for it. keras-hub's
  decoder attention layers write new keys and values into their cache with
  `slice_update`; prefix tuning trains through that cache path, so it
  registers the gradient (through the public `tf.RegisterGradient`) once,
  unless TensorFlow already has one.
"""

import contextlib

import keras
import tensorflow as tf

_SLICE_UPDATE_OPERATION = "XlaDynamicUpdateSlice"


@contextlib.contextmanager
def unlocked(layer):
    """Lets a built layer take new state attributes inside the block."""
    tracker = getattr(layer, "_tracker", None)
    if tracker is None:
        yield
        return
    tracker.unlock()
    try:
        yield
    finally:
        tracker.lock()


def set_sublayer(parent, attribute, index, new):
    """Replaces the sublayer `parent.<attribute>[index]` (or the attribute
    itself when `index` is None) with `new`, and untracks the old one."""
    old = getattr(parent, attribute)
    if index is not None:
        old = old[index]
    with unlocked(parent):
        if index is None:
            setattr(parent, attribute, new)
        else:
            container = getattr(parent, attribute)
            container[index] = new
    tracked = getattr(parent, "_layers", None)
    if tracked is not None:
        # Replace in place: the order of `_layers` is the order of
        # `model.weights`, which `get_weights` / `set_weights` rely on.
        # (setattr may already have appended `new` at the end).
        kept = [layer for layer in tracked if layer is not new]
        positions = [i for i, layer in enumerate(kept) if layer is old]
        if positions:
            kept[positions[0]] = new
            kept = [
                layer for i, layer in enumerate(kept) if i not in positions[1:]
            ]
        else:
            kept.append(new)
        tracked[:] = kept


def distribution_strategy(model):
    """The `tf.distribute.Strategy` the model's variables were created
    under (the default strategy when none)."""
    for variable in model.weights:
        tf_variable = getattr(variable, "_value", None)
        strategy = getattr(tf_variable, "distribute_strategy", None)
        if strategy is not None:
            return strategy
    return tf.distribute.get_strategy()


def is_functional(layer):
    """Whether `layer` is a functional model (it runs a graph of layers, so
    reassigning one of its attributes changes nothing that runs)."""
    if isinstance(layer, keras.Sequential):
        return True
    return any(cls.__name__ == "Functional" for cls in type(layer).__mro__)


def is_rebuildable(model):
    """Whether `keras.models.clone_model` rebuilds `model` as the same kind
    of model: plain functional and Sequential models, not subclasses (a
    keras-hub task would come back as a plain `Functional`, losing its
    class and preprocessor)."""
    return type(model) is keras.Sequential or (
        type(model).__name__ == "Functional" and is_functional(model)
    )


def replace_node(model, old, new):
    """Makes the functional `model` run `new` wherever its graph runs `old`
    (same inputs, same call arguments), and hold `new` wherever it held
    `old` as an attribute. `replace_node(model, new, old)` undoes it."""
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is old:
                node.operation = new

    def swap(operations):
        return [new if op is old else op for op in operations]

    # New containers rather than edits: TensorFlow's object tracking
    # refuses to save a tracked list whose elements were replaced.
    object.__setattr__(model, "_operations", swap(model._operations))
    object.__setattr__(
        model,
        "_operations_by_depth",
        {d: swap(ops) for d, ops in model._operations_by_depth.items()},
    )
    tracked = getattr(model, "_layers", None)
    # The order of `_layers` is the order of `model.weights`: keep `new` at
    # `old`'s place (the attribute changes below may append it).
    index = None
    if tracked is not None and any(layer is old for layer in tracked):
        index = next(i for i, layer in enumerate(tracked) if layer is old)
    for attribute, value in list(vars(model).items()):
        if attribute.startswith("_"):
            continue
        if value is old:
            set_sublayer(model, attribute, None, new)
        elif isinstance(value, list) and any(item is old for item in value):
            with unlocked(model):
                setattr(model, attribute, swap(value))
    if tracked is not None:
        kept = [
            layer for layer in tracked if layer is not new and layer is not old
        ]
        kept.insert(len(kept) if index is None else index, new)
        tracked[:] = kept


def apply_counter(optimizer):
    """The variable that counts `optimizer.apply` calls (what Keras's
    learning-rate schedules are evaluated at), also with gradient
    accumulation, where `optimizer.iterations` counts steps instead."""
    return optimizer._iterations


def uses_weight_decay(optimizer, variable):
    """Whether `optimizer` applies its weight decay (when it has one) to
    `variable`: not when its `exclude_from_weight_decay` excluded it."""
    return optimizer._use_weight_decay(variable)


def build_for_fit(model, batch):
    """Creates every variable `model.fit` would create in its first trace
    (the model's, its compile loss and metrics', its optimizer's) from
    `batch`, a structure of tensors or `tf.TensorSpec`s shaped like one
    preprocessed `(x, y)` or `(x, y, sample_weight)` batch."""
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch)


def call_arguments(layer):
    """`(args, kwargs)`: the symbolic tensors (and other values) of
    `layer`'s first call in a functional model, positional and by name."""
    arguments = layer._inbound_nodes[0].arguments
    return tuple(arguments.args), dict(arguments.kwargs)


def syncs_without_merge_call():
    """Whether the current distribution strategy's replicas sync without
    `merge_call` (no strategy, TPUs, XLA on GPUs): then a `cond` may step an
    optimizer in the replica context."""
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def self_attention_layer(encoder):
    """The self-attention layer of a keras-hub `TransformerEncoder` (a
    `MultiHeadAttention`, or the wrapper PEFT put in its place)."""
    return encoder._self_attention_layer


def set_feedforward_activation(encoder, activation):
    """Makes the feed-forward network of a keras-hub `TransformerEncoder`
    use `activation` (a Keras activation function); the encoder's config
    reports it too."""
    encoder.activation = activation
    encoder._feedforward_intermediate_dense.activation = activation


@contextlib.contextmanager
def recording_call(layer, replacement):
    """Makes `layer.__call__` run `replacement(original_call, *args,
    **kwargs)` inside the block (eager calls only: a traced function keeps
    what it traced)."""
    original = layer.call

    def call(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        object.__delattr__(layer, "call")


def key_value_projections(attention):
    """The key and value `EinsumDense` projections of a keras-hub rotary
    decoder attention layer (`LlamaAttention`, `CachedMistralAttention`,
    `QwenAttention`, `CachedGemmaAttention`)."""
    if hasattr(attention, "_key_dense"):
        return attention._key_dense, attention._value_dense
    return attention.key_dense, attention.value_dense


def differentiable_slice_update():
    """Makes `keras.ops.slice_update` differentiable on TensorFlow (with
    respect to the tensor updated and the update; not the start indices).
    Idempotent."""
    try:
        tf.RegisterGradient(_SLICE_UPDATE_OPERATION)(_slice_update_gradient)
    except KeyError:
        # Already registered (by an earlier call, or by TensorFlow).
        pass


def _slice_update_gradient(operation, gradient):
    # Inputs: the tensor, the update, the start indices.
    update, start = operation.inputs[1], operation.inputs[2]
    size = tf.shape(update, out_type=start.dtype)
    # XLA clamps the start so that the update fits.
    limit = tf.shape(gradient, out_type=start.dtype) - size
    start = tf.clip_by_value(start, tf.zeros_like(start), limit)
    update_gradient = tf.slice(gradient, start, size)
    tensor_gradient = keras.ops.slice_update(
        gradient, start, tf.zeros_like(update_gradient)
    )
    return tensor_gradient, update_gradient, None
