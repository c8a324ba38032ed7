"""Every parameter-efficient method and training control on a small
classifier of every keras-hub encoder family (`kfinetune.encoders`)."""

import keras
import keras_hub
import numpy as np
import pytest

from kfinetune import callbacks
from kfinetune import encoders
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import testing
from kfinetune.peft import injected

FAMILIES = sorted(testing.FAMILY_NAMES)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
Y = np.array([0, 1, 0, 1], "int32")
# keras-hub's classifier of each family; ELECTRA has none.
CLASSIFIERS = {
    "albert": keras_hub.models.AlbertTextClassifier,
    "bert": keras_hub.models.BertTextClassifier,
    "deberta_v3": keras_hub.models.DebertaV3TextClassifier,
    "distil_bert": keras_hub.models.DistilBertTextClassifier,
    "roberta": keras_hub.models.RobertaTextClassifier,
    "xlm_roberta": keras_hub.models.XLMRobertaTextClassifier,
}
METHODS = {
    "lora": lambda: peft.LoRAConfig(rank=2, alpha=4, use_rslora=True),
    "houlsby": lambda: peft.AdapterConfig(size=4),
    "prefix": lambda: peft.PrefixConfig(length=2, hidden=8),
    "prompt": lambda: peft.PromptConfig(length=2, init="vocab"),
    "ia3": lambda: peft.IA3Config(),
    "parallel": lambda: peft.AdapterConfig(size=4, placement="parallel"),
    "dora": lambda: peft.LoRAConfig(rank=2, use_dora=True),
    "pissa": lambda: peft.LoRAConfig(rank=2, init="pissa", targets=".*/key"),
    "olora": lambda: peft.LoRAConfig(
        rank=2, init="olora", targets=".*/attention_output"
    ),
    "pfeiffer": lambda: peft.AdapterConfig(size=4, placement="pfeiffer"),
}
# The methods are applied as named adapters, several active together in
# one model, so one fit and one reload cover a stack. Methods that cannot
# share layers go to different stacks (IA3 does not wrap a LoRA, DoRA no
# other LoRA); PiSSA and OLoRA take layers DoRA leaves.
STACKS = {
    "lora_houlsby_prefix_prompt": ["lora", "houlsby", "prefix", "prompt"],
    "ia3_parallel": ["ia3", "parallel"],
    "dora_pissa_olora_pfeiffer": ["dora", "pissa", "olora", "pfeiffer"],
}
# What a family refuses, and the words of the reason.
REFUSED = {
    ("deberta_v3", "prefix"): "Prefix tuning cannot adapt DeBERTa-v3",
    ("albert", "prompt"): "shared across depth",
}
_QUERY_VALUE = ["self_attention_layer/query", "self_attention_layer/value"]
# The layers each method wraps in a transformer block, the same in every
# family (DeBERTa's disentangled attention and ALBERT's shared layer too;
# ALBERT's two layers share one, so one wrapper serves both).
WRAPPED = {
    "lora": _QUERY_VALUE,
    "dora": _QUERY_VALUE,
    "pissa": ["self_attention_layer/key"],
    "olora": ["self_attention_layer/attention_output"],
    "houlsby": [
        "self_attention_layer/attention_output",
        "feedforward_output_dense",
    ],
    "pfeiffer": ["feedforward_output_dense"],
    "parallel": ["feedforward_intermediate_dense", "feedforward_output_dense"],
    "prefix": ["self_attention_layer"],
    "ia3": [
        "self_attention_layer/key",
        "self_attention_layer/value",
        "feedforward_output_dense",
    ],
}
# The layer whose output prompt tuning extends: after the embedding layer
# norm, or after the projection up to the hidden size.
PROMPT_TARGET = {
    "albert": "embedding_projection",
    "electra": "embeddings_projection",
}


def classifier(family, base=None):
    # ALBERT: two layers over one shared layer, to show the sharing.
    layers = 2 if family == "albert" else 1
    base = base or testing.small_backbone(family, num_layers=layers, seed=1)
    keras.utils.set_random_seed(2)
    if family in CLASSIFIERS:
        return CLASSIFIERS[family](
            backbone=base, num_classes=2, preprocessor=None, dropout=0.0
        )
    # ELECTRA: keras-hub has no classifier; a head on `[CLS]`.
    inputs = {
        name: keras.Input((None,), dtype="int32", name=name)
        for name in encoders.input_names(base)
    }
    cls = encoders.sequence_output(base, inputs)[:, 0]
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(cls))


def unshared_albert():
    """An ALBERT whose two layers are not shared (`num_groups=2`)."""
    tokenizer = testing.small_tokenizer("albert")
    keras.utils.set_random_seed(1)
    base = keras_hub.models.AlbertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_groups=2,
        num_heads=4,
        hidden_dim=32,
        embedding_dim=16,
        intermediate_dim=64,
        max_sequence_length=64,
    )
    return classifier("albert", base)


@pytest.fixture(scope="module")
def inputs():
    """A padded batch for each family, with the inputs it takes."""
    rng = np.random.default_rng(0)
    batch = {
        "token_ids": rng.integers(5, 40, (4, 8)).astype("int32"),
        "segment_ids": np.zeros((4, 8), "int32"),
        "padding_mask": np.ones((4, 8), "int32"),
    }
    batch["padding_mask"][:, 6:] = 0
    names = {
        family: ("token_ids", "segment_ids", "padding_mask")
        if testing.FAMILY_NAMES[family].segment_ids
        else ("token_ids", "padding_mask")
        for family in FAMILIES
    }
    return {f: {n: batch[n] for n in names[f]} for f in FAMILIES}


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def compile_for(model, optimizer=None, **kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.5), loss=LOSS, **kwargs
    )


def wrapped_paths(model, name):
    """The paths of the base layers the adapter `name` wraps."""
    paths = []
    for wrapper in injected.wrappers(model, name):
        layer = wrapper.layer
        while isinstance(layer, injected.WRAPPERS):
            layer = layer.layer
        paths.append(layer.path)
    return sorted(paths)


def apply_stack(family, stack):
    """The family's classifier with the stack's methods (but those it
    refuses) as named adapters, all active."""
    methods = [m for m in STACKS[stack] if (family, m) not in REFUSED]
    model = classifier(family)
    for method in methods:
        model = peft.apply(model, METHODS[method](), name=method)
    peft.set_active(model, methods)
    return model, methods


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_methods_fit_only_their_weights_and_reload(
    family, stack, inputs, tmp_path
):
    """Each method wraps the same layers in every family; a fit moves each
    method's weights and the head, and no base weight; the model reloads
    from `.keras` with equal outputs. The first stack also trains under
    XLA, exports as a SavedModel, and merges and unmerges (LoRA and the
    prefix MLP) with equal outputs."""
    x = inputs[family]
    first = stack == next(iter(STACKS))
    model, methods = apply_stack(family, stack)
    for method in methods:
        assert model.adapters[method].skipped == []
        block_paths = [
            p.split("/", 1)[-1] for p in wrapped_paths(model, method)
        ]
        if method == "prompt":
            target = PROMPT_TARGET.get(family, "embeddings_layer_norm")
            assert target in block_paths, block_paths
        else:
            assert block_paths == sorted(WRAPPED[method])
    before = snapshot(model)
    compile_for(model, jit_compile=first)
    history = model.fit(x, Y, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    if first:
        # Predictions need no XLA, whose compilations would cost more than
        # they run.
        compile_for(model)
    after = snapshot(model)
    heads = tuple(f"{path}/" for path in peft.task_heads(model.base))
    owners = {m: f"{METHODS[m]().method}_{m}" for m in methods}
    trainable = {v.path for v in model.trainable_weights}
    for path in trainable:
        assert path.startswith(heads) or any(o in path for o in owners.values())
    moved = {p for p in trainable if not np.array_equal(before[p], after[p])}
    for method, owner in owners.items():
        assert any(owner in p for p in moved), (method, sorted(moved))
    for path, value in before.items():
        if path not in trainable:
            np.testing.assert_array_equal(after[path], value, path)
    testing.assert_keras_round_trip(model, x, str(tmp_path))
    if first:
        testing.assert_saved_model_round_trip(model, x, str(tmp_path / "sm"))
        expected = testing.predict(model, x)
        peft.merge(model)
        testing.assert_outputs_close(testing.predict(model, x), expected)
        peft.unmerge(model)
        testing.assert_outputs_close(testing.predict(model, x), expected)


@pytest.mark.parametrize("family, method", sorted(REFUSED))
def test_refusals_name_the_family_and_change_nothing(family, method):
    model = classifier(family)
    state = testing.model_state(model)
    with pytest.raises(ValueError, match=REFUSED[family, method]):
        peft.apply(model, METHODS[method]())
    testing.assert_model_unchanged(model, state)


def test_prefix_on_deberta_attention_named_explicitly_says_why():
    with pytest.raises(ValueError, match="relative position to the query"):
        peft.apply(
            classifier("deberta_v3"),
            peft.PrefixConfig(length=2, targets=".*/self_attention_layer"),
        )


def test_prompts_in_an_albert_without_shared_layers(inputs, tmp_path):
    x = inputs["albert"]
    model = peft.apply(unshared_albert(), METHODS["prompt"]())
    compile_for(model)
    model.fit(x, Y, batch_size=4, verbose=0)
    testing.assert_keras_round_trip(model, x, str(tmp_path))


@pytest.mark.parametrize("family", ["deberta_v3", "electra", "roberta"])
def test_prompts_keep_the_sequence_and_padding_masked(family, inputs):
    """The prompts leave the sequence output's length alone, and tokens
    under the padding still change nothing (DeBERTa's relative attention,
    ELECTRA's projected embeddings, RoBERTa's shifted positions)."""
    x = inputs[family]
    model = classifier(family)
    peft.apply(model, METHODS["prompt"]())
    backbone = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras_hub.models.Backbone)
    )
    output = backbone(x)
    if isinstance(output, dict):
        output = output["sequence_output"]
    assert tuple(output.shape) == (4, 8, 32)
    padded = dict(x, token_ids=x["token_ids"].copy())
    padded["token_ids"][:, 6:] = 3
    testing.assert_outputs_close(model(padded), model(x))


class Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(snapshot(self.model))


@pytest.mark.parametrize("family", FAMILIES)
def test_layerwise_decay_and_gradual_unfreezing(family, inputs):
    """LoRA, with the layer norms kept trainable by pattern, under a
    layer-wise decay, unfrozen from the top: the head trains first, then
    the block's LoRA and layer norms (ALBERT's one shared layer, for both
    depths); base kernels and embeddings never."""
    x = inputs[family]
    config = peft.LoRAConfig(
        rank=2, trainable=["logits", r".*self_attention_layer_norm"]
    )
    model = peft.apply(classifier(family), config)
    groups = optimizers.layer_groups(model)
    assert groups.names == ["embeddings", "block_0", "head"]
    optimizer = optimizers.LayerwiseOptimizer(
        keras.optimizers.SGD(0.5), groups, decay=0.5
    )
    compile_for(model, optimizer)
    start = snapshot(model)
    snapshots = Snapshots()
    unfreezing = callbacks.GradualUnfreezing(groups, verbose=0)
    model.fit(
        x,
        Y,
        batch_size=4,
        epochs=2,
        callbacks=[unfreezing, snapshots],
        verbose=0,
    )

    def moved(epoch, group):
        before = start if epoch == 0 else snapshots.epochs[epoch - 1]
        now = snapshots.epochs[epoch]
        return sorted(
            p for p in groups[group] if not np.array_equal(before[p], now[p])
        )

    assert moved(0, "block_0") == [] and moved(0, "embeddings") == []
    assert moved(0, "head") == ["logits/bias", "logits/kernel"]
    block = moved(1, "block_0")
    assert any("lora_default" in p for p in block)
    assert any("self_attention_layer_norm" in p for p in block)
    assert all(
        "lora_default" in p or "self_attention_layer_norm" in p for p in block
    )
    assert moved(1, "embeddings") == []


def test_deberta_blocks_rematerialise(inputs):
    x = inputs["deberta_v3"]
    losses = []
    for remat in (False, True):
        model = peft.apply(classifier("deberta_v3"), METHODS["lora"]())
        if remat:
            changed = peft.remat(model)
            assert [p.split("/")[-1] for p in changed] == [
                "disentangled_attention_encoder_layer_0"
            ]
        compile_for(model)
        history = model.fit(x, Y, batch_size=4, verbose=0)
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)


def test_layer_groups_of_albert_groups_of_several_inner_layers():
    """One group per shared layer, in the order they first run: group by
    group, inner layer by inner layer, whatever `num_layers` is."""
    keras.utils.set_random_seed(1)
    base = keras_hub.models.AlbertBackbone(
        vocabulary_size=32,
        num_layers=4,
        num_groups=2,
        num_inner_repetitions=2,
        num_heads=2,
        hidden_dim=8,
        embedding_dim=4,
        intermediate_dim=8,
        max_sequence_length=8,
    )
    groups = optimizers.layer_groups(base)
    assert groups.names == [
        "embeddings",
        "block_0_0",
        "block_0_1",
        "block_1_0",
        "block_1_1",
        "head",
    ]
    assert all(
        p.startswith("group_1_inner_layer_0/") for p in groups["block_1_0"]
    )
