"""Every class registered under the `kfinetune` package round-trips through
Keras serialization.

The registered classes are discovered (every kfinetune module is imported),
not listed, so a new class fails here until it has a sample instance in
`SAMPLES`.
"""

import functools
import importlib
import json
import pkgutil

import keras
import keras_hub
import pytest

import kfinetune
from kfinetune import callbacks
from kfinetune import distillation
from kfinetune import distribute
from kfinetune import incremental
from kfinetune import layers
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import presets
from kfinetune import testing
from kfinetune.layers import prompt_wrappers
from kfinetune.optimizers import schedules


def registered_names():
    """The registered names (`kfinetune>Class`) of every kfinetune class."""
    for module in pkgutil.walk_packages(kfinetune.__path__, "kfinetune."):
        # Importing `kfinetune.__main__` would run the command line.
        if module.name.rsplit(".", 1)[-1] != "__main__":
            importlib.import_module(module.name)
    return sorted(
        name
        for name in keras.saving.get_custom_objects()
        if name.startswith("kfinetune>")
    )


@functools.cache
def bert_groups():
    return optimizers.layer_groups(testing.small_bert_classifier())


def peft_model():
    model = peft.apply(testing.small_bert_classifier(), peft.LoRAConfig(2))
    model = peft.apply(model, peft.AdapterConfig(size=4), name="adapter")
    peft.set_active(model, ["default", "adapter"])
    peft.merge(model, "default")
    return model


# One sample instance per registered class, with non-default arguments
# where the class has any.
SAMPLES = {
    "kfinetune>Adapter": lambda: layers.Adapter(
        size=3, activation="gelu", init_scale=0.1, residual=False
    ),
    "kfinetune>AdapterConfig": lambda: peft.AdapterConfig(
        size=8, placement="parallel", targets=[".*feedforward_output.*"]
    ),
    "kfinetune>AdapterWrapper": lambda: layers.AdapterWrapper(
        keras.layers.Dense(4), size=2, activation="gelu", parallel=True
    ),
    "kfinetune>AdaptiveFineTuning": lambda: callbacks.AdaptiveFineTuning(
        bert_groups(),
        monitor="val_accuracy",
        patience=2,
        action="reduce_lr",
        factor=0.3,
        min_delta=0.01,
        mode="max",
        retrace=False,
        verbose=0,
    ),
    "kfinetune>CRF": lambda: layers.CRF(
        3,
        constraints=kfinetune.data.tag_constraints(("O", "B-X", "I-X"), "IOB2"),
        name="tagger_crf",
    ),
    "kfinetune>CRFTagger": lambda: presets.token_classifier(
        3, sequence_length=8, crf=True, backbone=testing.small_bert_backbone()
    ),
    "kfinetune>CRFLoss": lambda: layers.CRFLoss(
        reduction="sum", name="tag_nll"
    ),
    "kfinetune>Distiller": lambda: distillation.Distiller(
        testing.small_bert_classifier(num_layers=2),
        distillation.shrink(testing.small_bert_classifier(seed=1), [1]),
        temperature=3.0,
        alpha=0.2,
        hidden_weight=0.5,
        hidden_layers={0: 1},
        name="distiller",
    ),
    "kfinetune>EWC": lambda: incremental.EWC(
        0.5, [[0.25, -1.0], [2.0, 0.0]], [[1.0, 0.0], [0.5, 3.0]]
    ),
    "kfinetune>ChiefBackupAndRestore": lambda: distribute.ChiefBackupAndRestore(
        "/tmp/backup", save_freq=5, double_checkpoint=True
    ),
    "kfinetune>ElectraTextClassifier": lambda: presets.ElectraTextClassifier(
        testing.small_backbone("electra", num_layers=1, hidden_dim=8),
        num_classes=3,
        dropout=0.2,
        preprocessor=presets.ElectraTextClassifierPreprocessor(
            testing.small_tokenizer("electra"), sequence_length=12
        ),
    ),
    "kfinetune>ElectraTextClassifierPreprocessor": lambda: (
        presets.ElectraTextClassifierPreprocessor(
            testing.small_tokenizer("electra"), sequence_length=12
        )
    ),
    "kfinetune>GradualUnfreezing": lambda: callbacks.GradualUnfreezing(
        bert_groups(),
        every=2,
        unit="step",
        mode="retrace",
        train_batchnorm=True,
        verbose=0,
    ),
    "kfinetune>GroupLearningRates": callbacks.GroupLearningRates,
    "kfinetune>HFBertBackbone": lambda: presets.HFBertBackbone(
        vocabulary_size=len(testing.VOCABULARY),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
        activation="relu",
    ),
    # The other families' `HF...Backbone`s, each with a non-default
    # activation.
    **{
        f"kfinetune>HF{name}Backbone": (
            lambda name=name, size=size, extra=extra: getattr(
                presets, f"HF{name}Backbone"
            )(
                **{size: len(testing.VOCABULARY)},
                num_layers=1,
                num_heads=2,
                hidden_dim=8,
                intermediate_dim=16,
                max_sequence_length=16,
                activation="silu",
                **extra,
            )
        )
        for name, size, extra in (
            ("Electra", "vocab_size", {"embedding_dim": 4}),
            ("Albert", "vocabulary_size", {"embedding_dim": 4}),
            ("Roberta", "vocabulary_size", {}),
            ("XLMRoberta", "vocabulary_size", {}),
            ("DistilBert", "vocabulary_size", {}),
            ("DebertaV3", "vocabulary_size", {"bucket_size": 4}),
        )
    },
    "kfinetune>IA3": lambda: layers.IA3(
        keras.layers.Dense(4), position="input"
    ),
    "kfinetune>IA3Config": lambda: peft.IA3Config(
        targets=[".*/key"], feedforward=".*intermediate.*"
    ),
    "kfinetune>L2SP": lambda: incremental.L2SP(0.1, [1.5, -0.25, 0.0]),
    "kfinetune>LayerwiseOptimizer": lambda: optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3),
        bert_groups(),
        lr=slice(1e-4, 1e-3),
        optimizers={"embeddings": keras.optimizers.SGD(1e-3)},
        weight_decay={"head": 0.0},
    ),
    "kfinetune>LoRA": lambda: layers.LoRA(
        keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 4)),
        rank=2,
        alpha=8,
        dropout=0.1,
    ),
    "kfinetune>LoRAConfig": lambda: peft.LoRAConfig(
        rank=4, alpha=8, dropout=0.1, targets=".*query", trainable=["logits"]
    ),
    "kfinetune>Mixup": lambda: layers.Mixup(alpha=0.4, seed=3, name="mix"),
    "kfinetune>MixupLoss": lambda: layers.MixupLoss(
        keras.losses.CategoricalCrossentropy(from_logits=True),
        layers.Mixup(alpha=0.3, seed=1, name="mix"),
        reduction="sum",
        name="mixed",
    ),
    "kfinetune>OneCycle": lambda: schedules.OneCycle(
        1e-3, 100, 0.3, 10.0, 100.0
    ),
    "kfinetune>PEFTModel": peft_model,
    "kfinetune>ParallelAdapterTap": lambda: layers.ParallelAdapterTap(
        keras.layers.Dense(4)
    ),
    "kfinetune>PrefixAttention": lambda: layers.PrefixAttention(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=8),
        length=4,
        hidden=8,
    ),
    "kfinetune>PrefixConfig": lambda: peft.PrefixConfig(
        length=4, reparameterize=False
    ),
    "kfinetune>PromptConfig": lambda: peft.PromptConfig(
        length=4, position=1, seed=3
    ),
    "kfinetune>PromptEmbedding": lambda: layers.PromptEmbedding(
        length=2, position=1
    ),
    "kfinetune>PromptInsertion": lambda: prompt_wrappers.PromptInsertion(
        keras.layers.LayerNormalization(), length=2, position=1
    ),
    "kfinetune>PromptMask": lambda: prompt_wrappers.PromptMask(
        keras_hub.layers.TransformerEncoder(16, num_heads=2),
        length=2,
        position=1,
        strip=True,
    ),
    "kfinetune>SlantedTriangular": lambda: schedules.SlantedTriangular(
        1e-3, 100, 0.2, 16
    ),
    "kfinetune>SpanHead": lambda: layers.SpanHead(
        kernel_initializer="zeros", name="span"
    ),
    "kfinetune>TrainingCurves": lambda: callbacks.TrainingCurves(
        "curves.png", learning_rates=False, dpi=80
    ),
    "kfinetune>WarmupCosineDecay": lambda: schedules.WarmupCosineDecay(
        1e-3, 10, 100, 0.1
    ),
    "kfinetune>WarmupLinearDecay": lambda: schedules.WarmupLinearDecay(
        1e-3, 10, 100, 1e-5
    ),
}

REGISTERED = registered_names()


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_class_round_trips(name):
    assert name in SAMPLES, (
        f"{name} is registered but has no sample instance: add one to "
        "SAMPLES in tests/test_serialization.py."
    )
    sample = SAMPLES[name]()
    assert keras.saving.get_registered_name(type(sample)) == name
    testing.assert_config_round_trip(sample)
    # `.keras` files hold the serialized config as JSON.
    text = json.dumps(keras.saving.serialize_keras_object(sample))
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(revived) is type(sample)
    # JSON has lists, not tuples: a functional model's layers' build
    # configs come back with list shapes. Compare as JSON holds them.
    assert as_json(revived.get_config()) == as_json(sample.get_config())


def as_json(config):
    return json.loads(json.dumps(config))


def test_every_sample_is_of_a_registered_class():
    assert sorted(SAMPLES) == REGISTERED
