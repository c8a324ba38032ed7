"""Hugging Face encoder checkpoints of every family, loaded into keras-hub
backbones that compute what PyTorch computes.

`kfinetune.presets.backbone(folder)` reads a Hugging Face folder
(`config.json`, `model.safetensors`) of a BERT, RoBERTa, XLM-RoBERTa,
DistilBERT, ALBERT, ELECTRA or DeBERTa-v3 model. keras-hub converts the
first five itself; kfinetune converts ELECTRA and DeBERTa-v3, for which
keras-hub has no converter, and corrects what keras-hub's conversion
misses:

- the feed-forward activation: keras-hub fixes it per family (the tanh
  approximation of GELU for BERT, ELECTRA and ALBERT, exact GELU for the
  others), while the checkpoint names its own (`hidden_act`): exact GELU
  for most BERT and all ELECTRA checkpoints and for `albert-base-v1`. A
  checkpoint whose activation differs from keras-hub's loads as the
  family's `HF...Backbone` (`HFBertBackbone`, `HFElectraBackbone`, ...),
  the keras-hub backbone with an `activation` argument, which survives
  saving, `PEFTModel` rebuilding and export.
- RoBERTa's token-type embedding: PyTorch adds its one row to every
  token; keras-hub's RoBERTa converter drops it (its XLM-RoBERTa converter
  keeps it), which moves the hidden states of a fine-tuned checkpoint
  (by 2.2 on the tiny test checkpoint). kfinetune adds the row to the
  position embeddings, which every token also receives.

A checkpoint whose conventions keras-hub's backbone cannot follow (another
layer-norm epsilon, relative position embeddings in BERT, a DeBERTa
without DeBERTa-v3's disentangled attention, ...) is refused with an
error naming the setting, rather than loaded into a model that computes
something else.

Conventions a checkpoint keeps that need no correction: RoBERTa and
XLM-RoBERTa number positions from the padding index plus one (keras-hub
drops the first two rows of the table), and PyTorch numbers them by the
token ids, not the mask: they agree for right-padded inputs. PyTorch's
hidden states at padding positions are not those of keras-hub (DeBERTa
zeroes the embeddings there, RoBERTa gives padding the padding position);
no real token attends to them.
"""

import json
import pathlib

import keras
import keras_hub
import numpy as np

from kfinetune import compat


def gelu_approximate(x):
    """GELU with the tanh approximation (Hugging Face's `gelu_new`)."""
    return keras.activations.gelu(x, approximate=True)


# kfinetune's names of the feed-forward activations, and the functions.
ACTIVATIONS = {
    "gelu": keras.activations.gelu,  # `approximate=False`: exact (erf).
    "gelu_approximate": gelu_approximate,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
}
# Hugging Face's `hidden_act` values, and kfinetune's names for them.
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


class _CheckpointActivation:
    """The `activation` argument of the `HF...Backbone` classes."""

    def __init__(self, *args, activation="gelu", **kwargs):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(ACTIVATIONS)}. "
                f"Received: activation={activation!r}"
            )
        super().__init__(*args, **kwargs)
        self.activation = activation
        for layer in _encoder_layers(self):
            compat.set_feedforward_activation(layer, ACTIVATIONS[activation])

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}

    @classmethod
    def from_backbone(cls, backbone, activation):
        """A backbone of this class with the config and weights of
        `backbone` (of the keras-hub class this one extends) and the given
        `activation`.

        Args:
            backbone: a built keras-hub backbone of the family.
            activation: see the class arguments.

        Returns:
            A new backbone; `backbone` is unchanged.

        Example:

        ```python
        exact = kfinetune.presets.HFBertBackbone.from_backbone(
            backbone, "gelu"
        )
        ```
        """
        keras_hub_class = next(
            c for c in cls.__mro__ if not issubclass(c, _CheckpointActivation)
        )
        if not isinstance(backbone, keras_hub_class):
            raise ValueError(
                f"`backbone` must be a keras_hub.models."
                f"{keras_hub_class.__name__}. Received: "
                f"backbone={type(backbone).__name__}"
            )
        config = {
            k: v for k, v in backbone.get_config().items() if k != "activation"
        }
        new = cls(**config, activation=activation)
        new.set_weights(backbone.get_weights())
        return new


def _encoder_layers(backbone):
    """The transformer layers of `backbone`, each once (ALBERT keeps a
    list of inner layers per group)."""
    for item in backbone.transformer_layers:
        yield from item if isinstance(item, list) else (item,)


@keras.saving.register_keras_serializable(package="kfinetune")
class HFBertBackbone(_CheckpointActivation, keras_hub.models.BertBackbone):
    """A keras-hub `BertBackbone` with a chosen feed-forward activation.

    The same model as `keras_hub.models.BertBackbone` (same layers, weights and
    outputs), except for the activation of every transformer layer's feed-
    forward network, which keras-hub fixes. Most Hugging Face BERT checkpoints
    (all-MiniLM-L6-v2 among them) use exact GELU, keras-hub the tanh
    approximation. `kfinetune.presets.backbone` builds this class when a Hugging
    Face checkpoint asks for an activation other than keras-hub's; the
    activation is part of the config, so it survives `.keras` saving,
    `PEFTModel` rebuilding and export.

    Args:
        activation: the feed-forward activation: `"gelu"` (exact, with
            erf), `"gelu_approximate"` (the tanh approximation), `"relu"`
            or `"silu"`. Defaults to `"gelu"`.
        **kwargs: the arguments of `keras_hub.models.BertBackbone`.

    Example:

    ```python
    backbone = kfinetune.presets.HFBertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFElectraBackbone(
    _CheckpointActivation, keras_hub.models.ElectraBackbone
):
    """A keras-hub `ElectraBackbone` with a chosen feed-forward activation.

    Hugging Face ELECTRA checkpoints use exact GELU, keras-hub the tanh
    approximation. Otherwise as `HFBertBackbone` (the same layers, weights and
    outputs as keras-hub's class; `activation` is one of `"gelu"`,
    `"gelu_approximate"`, `"relu"` and `"silu"`, `"gelu"` by default, and is
    kept in the config); the other arguments are
    `keras_hub.models.ElectraBackbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFElectraBackbone(
        vocab_size=100,
        embedding_dim=32,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFAlbertBackbone(_CheckpointActivation, keras_hub.models.AlbertBackbone):
    """A keras-hub `AlbertBackbone` with a chosen feed-forward activation.

    `albert-base-v1` uses exact GELU, keras-hub the tanh approximation (v2's
    `gelu_new`). Otherwise as `HFBertBackbone` (the same layers, weights and
    outputs as keras-hub's class; `activation` is one of `"gelu"`,
    `"gelu_approximate"`, `"relu"` and `"silu"`, `"gelu"` by default, and is
    kept in the config); the other arguments are
    `keras_hub.models.AlbertBackbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFAlbertBackbone(
        vocabulary_size=100,
        embedding_dim=32,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFRobertaBackbone(
    _CheckpointActivation, keras_hub.models.RobertaBackbone
):
    """A keras-hub `RobertaBackbone` with a chosen feed-forward activation.

    keras-hub uses exact GELU, as RoBERTa's released checkpoints; this class is
    for a checkpoint that asks for another. Otherwise as `HFBertBackbone` (the
    same layers, weights and outputs as keras-hub's class; `activation` is one
    of `"gelu"`, `"gelu_approximate"`, `"relu"` and `"silu"`, `"gelu"` by
    default, and is kept in the config); the other arguments are
    `keras_hub.models.RobertaBackbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFRobertaBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFXLMRobertaBackbone(
    _CheckpointActivation, keras_hub.models.XLMRobertaBackbone
):
    """A keras-hub `XLMRobertaBackbone` with a chosen feed-forward activation.

    keras-hub uses exact GELU, as XLM-RoBERTa's released
    checkpoints; this class is for a checkpoint that asks for another.
    Otherwise as `HFBertBackbone` (the same layers, weights and outputs as
    keras-hub's class; `activation` is one of `"gelu"`, `"gelu_approximate"`,
    `"relu"` and `"silu"`, `"gelu"` by default, and is kept in the config); the
    other arguments are `keras_hub.models.XLMRobertaBackbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFXLMRobertaBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFDistilBertBackbone(
    _CheckpointActivation, keras_hub.models.DistilBertBackbone
):
    """A keras-hub `DistilBertBackbone` with a chosen feed-forward activation.

    keras-hub uses exact GELU, as DistilBERT's released
    checkpoints; this class is for a checkpoint that asks for another.
    Otherwise as `HFBertBackbone` (the same layers, weights and outputs as
    keras-hub's class; `activation` is one of `"gelu"`, `"gelu_approximate"`,
    `"relu"` and `"silu"`, `"gelu"` by default, and is kept in the config); the
    other arguments are `keras_hub.models.DistilBertBackbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFDistilBertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


@keras.saving.register_keras_serializable(package="kfinetune")
class HFDebertaV3Backbone(
    _CheckpointActivation, keras_hub.models.DebertaV3Backbone
):
    """A keras-hub `DebertaV3Backbone` with a chosen feed-forward activation.

    keras-hub uses exact GELU, as DeBERTa-v3's released checkpoints; this class
    is for a checkpoint that asks for another. Otherwise as `HFBertBackbone`
    (the same layers, weights and outputs as keras-hub's class; `activation` is
    one of `"gelu"`, `"gelu_approximate"`, `"relu"` and `"silu"`, `"gelu"` by
    default, and is kept in the config); the other arguments are
    `keras_hub.models.DebertaV3Backbone`'s.

    Example:

    ```python
    backbone = kfinetune.presets.HFDebertaV3Backbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """


class _Conventions:
    """What keras-hub's backbone of one family fixes, and where a Hugging
    Face config says it."""

    def __init__(
        self,
        hf_class,
        activation,
        epsilon,
        activation_key="hidden_act",
        default_activation="gelu",
        default_epsilon=1e-12,
    ):
        self.hf_class = hf_class
        # keras-hub's own feed-forward activation and layer-norm epsilon.
        self.activation = activation
        self.epsilon = epsilon
        self.activation_key = activation_key
        # transformers' defaults when the config leaves a key out.
        self.default_activation = default_activation
        self.default_epsilon = default_epsilon


CONVENTIONS = {
    "bert": _Conventions(HFBertBackbone, "gelu_approximate", 1e-12),
    "electra": _Conventions(HFElectraBackbone, "gelu_approximate", 1e-12),
    "albert": _Conventions(
        HFAlbertBackbone,
        "gelu_approximate",
        1e-12,
        default_activation="gelu_new",
    ),
    "roberta": _Conventions(HFRobertaBackbone, "gelu", 1e-5),
    "xlm-roberta": _Conventions(HFXLMRobertaBackbone, "gelu", 1e-5),
    # transformers' DistilBERT fixes its epsilon (1e-12) and calls the
    # activation `activation`.
    "distilbert": _Conventions(
        HFDistilBertBackbone, "gelu", None, activation_key="activation"
    ),
    "deberta-v2": _Conventions(
        HFDebertaV3Backbone, "gelu", 1e-7, default_epsilon=1e-7
    ),
}


def read_config(preset):
    """The `config.json` of a local Hugging Face encoder folder of a
    supported family (`CONVENTIONS`).

    Args:
        preset: a keras-hub preset handle or a local folder.

    Returns:
        The config as a dict, or `None` when `preset` is not a local
        Hugging Face folder of a supported family.

    Example:

    ```python
    config = kfinetune.hf_encoders.read_config("my-roberta-folder")
    config["model_type"]  # 'roberta'
    ```
    """
    config_file = pathlib.Path(str(preset)) / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    if config.get("model_type") not in CONVENTIONS:
        return None
    return config


def checkpoint_activation(preset):
    """The feed-forward activation a Hugging Face encoder checkpoint asks
    for (`hidden_act`, DistilBERT's `activation`, or transformers' default
    for the family).

    Args:
        preset: a keras-hub preset handle or a local folder.

    Returns:
        A key of `ACTIVATIONS`, or `None` when `preset` is not a local
        Hugging Face folder of a supported family.

    Raises:
        ValueError: the checkpoint's activation has no Keras equivalent.

    Example:

    ```python
    kfinetune.hf_encoders.checkpoint_activation(
        kfinetune.presets.minilm_path()
    )  # 'gelu'
    ```
    """
    config = read_config(preset)
    if config is None:
        return None
    conventions = CONVENTIONS[config["model_type"]]
    key = conventions.activation_key
    hidden_act = config.get(key, conventions.default_activation)
    if hidden_act not in HF_ACTIVATIONS:
        raise ValueError(
            f"The checkpoint's `{key}` ({preset}/config.json) has no Keras "
            f"equivalent in kfinetune; supported: {sorted(HF_ACTIVATIONS)}. "
            f"Received: {key}={hidden_act!r}"
        )
    return HF_ACTIVATIONS[hidden_act]


def _require(condition, preset, key, value, why):
    if not condition:
        raise ValueError(
            f"kfinetune cannot load the Hugging Face checkpoint {preset}: "
            f"{why}. Received: {key}={value!r}"
        )


def check_conventions(preset, config):
    """Refuses a checkpoint whose config asks for something keras-hub's
    backbone of the family does not compute (see the module docstring).

    Args:
        preset: the folder, named in the error.
        config: its `config.json`, from `read_config`.

    Raises:
        ValueError: naming the config key, its value and what keras-hub
            computes instead.

    Example:

    ```python
    folder = "my-deberta-folder"
    kfinetune.hf_encoders.check_conventions(
        folder, kfinetune.hf_encoders.read_config(folder)
    )
    ```
    """
    model_type = config["model_type"]
    conventions = CONVENTIONS[model_type]
    if conventions.epsilon is not None:
        epsilon = config.get("layer_norm_eps", conventions.default_epsilon)
        _require(
            np.isclose(epsilon, conventions.epsilon, rtol=1e-6, atol=0),
            preset,
            "layer_norm_eps",
            epsilon,
            f"keras-hub's {model_type} layer norms use epsilon "
            f"{conventions.epsilon:g}",
        )
    position_type = config.get("position_embedding_type", "absolute")
    _require(
        position_type == "absolute",
        preset,
        "position_embedding_type",
        position_type,
        "keras-hub's encoders have absolute position embeddings only",
    )
    if model_type in ("roberta", "xlm-roberta"):
        pad = config.get("pad_token_id", 1)
        _require(
            pad == 1,
            preset,
            "pad_token_id",
            pad,
            f"keras-hub's {model_type} numbers positions from 2, after "
            "padding index 1",
        )
    if model_type == "distilbert":
        sinusoidal = config.get("sinusoidal_pos_embds", False)
        _require(
            not sinusoidal,
            preset,
            "sinusoidal_pos_embds",
            sinusoidal,
            "keras-hub's DistilBERT learns its position embeddings",
        )
    if model_type == "deberta-v2":
        _check_deberta_v3(preset, config)


def _check_deberta_v3(preset, config):
    """keras-hub's `DebertaV3Backbone` computes DeBERTa-v3's attention:
    content and both disentangled terms (c2p, p2c) with keys shared
    between content and positions, log-bucketed relative positions, a
    layer-normed relative embedding table, and no absolute positions."""
    hidden = config["hidden_size"]
    head_size = hidden // config["num_attention_heads"]
    att_type = config.get("pos_att_type") or []
    if isinstance(att_type, str):
        att_type = att_type.lower().split("|")
    checks = (
        ("relative_attention", False, lambda v: v is True),
        ("pos_att_type", att_type, lambda v: sorted(v) == ["c2p", "p2c"]),
        ("share_att_key", False, lambda v: v is True),
        ("norm_rel_ebd", "none", lambda v: "layer_norm" in str(v)),
        ("position_biased_input", True, lambda v: v is False),
        ("type_vocab_size", 0, lambda v: v == 0),
        ("conv_kernel_size", 0, lambda v: v == 0),
        ("position_buckets", -1, lambda v: v > 0),
        ("embedding_size", None, lambda v: v in (None, hidden)),
        ("attention_head_size", None, lambda v: v in (None, head_size)),
    )
    for key, default, good in checks:
        value = att_type if key == "pos_att_type" else config.get(key, default)
        _require(
            good(value),
            preset,
            key,
            value,
            "keras-hub's DebertaV3Backbone computes DeBERTa-v3's "
            "attention only (relative_attention, pos_att_type c2p and "
            "p2c, share_att_key, norm_rel_ebd layer_norm, "
            "position_buckets > 0, heads of hidden_size / "
            "num_attention_heads, no absolute positions, token types, "
            "convolution or embedding projection)",
        )


def _weights(preset):
    """A function from a weight's name to its array, reading the folder's
    safetensors files (one, or several with an index); names may carry
    the task model's prefix (`electra.`, `deberta.`)."""
    from safetensors import safe_open

    folder = pathlib.Path(str(preset))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
    else:
        single = folder / "model.safetensors"
        if not single.is_file():
            raise ValueError(
                f"kfinetune reads Hugging Face checkpoints from safetensors "
                f"files; {folder} has no model.safetensors. Received: "
                f"preset={str(preset)!r}"
            )
        with safe_open(single, "np") as file:
            weight_map = {key: single.name for key in file.keys()}

    def get(name, prefixes):
        for prefix in prefixes:
            if prefix + name in weight_map:
                key = prefix + name
                with safe_open(folder / weight_map[key], "np") as file:
                    return file.get_tensor(key).astype("float32")
        raise ValueError(
            f"The checkpoint {preset} has no weight {name!r} (looked for "
            f"{[p + name for p in prefixes]})."
        )

    return get


def _port(backbone, pairs, get, prefixes):
    """Assigns each `(keras path, torch name)` pair: a `Linear` weight
    `(out, in)` transposed into the kernel's shape, anything else
    reshaped."""
    variables = {v.path: v for v in backbone.weights}
    for path, name in pairs:
        variable = variables[path]
        value = get(name, prefixes)
        if path.endswith("/kernel"):
            value = value.T
        variable.assign(np.reshape(value, variable.shape))


def _layer_pairs(keras_layer, torch_layer, attention):
    """The `(keras path, torch name)` pairs of one BERT-like layer."""
    dense = (
        *(
            (f"self_attention_layer/{k}", f"attention.self.{t}")
            for k, t in attention
        ),
        ("self_attention_layer/attention_output", "attention.output.dense"),
        ("feedforward_intermediate_dense", "intermediate.dense"),
        ("feedforward_output_dense", "output.dense"),
    )
    norms = (
        ("self_attention_layer_norm", "attention.output.LayerNorm"),
        ("feedforward_layer_norm", "output.LayerNorm"),
    )
    pairs = []
    for names, keras_weights in (
        (dense, ("kernel", "bias")),
        (norms, ("gamma", "beta")),
    ):
        for keras_name, torch_name in names:
            for keras_weight, torch_weight in zip(
                keras_weights, ("weight", "bias"), strict=True
            ):
                pairs.append(
                    (
                        f"{keras_layer}/{keras_name}/{keras_weight}",
                        f"{torch_layer}.{torch_name}.{torch_weight}",
                    )
                )
    return pairs


def _electra(preset, config):
    """A keras-hub `ElectraBackbone` with an ELECTRA checkpoint's weights
    (the discriminator's, or a generator's). Its `pooled_dense` stays
    newly initialised: ELECTRA checkpoints have no pooler (their
    classification head is the task model's own)."""
    hidden = config["hidden_size"]
    # transformers' default when the config leaves it out.
    embedding = config.get("embedding_size", 128)
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=hidden,
        embedding_dim=embedding,
        intermediate_dim=config["intermediate_size"],
        dropout=config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=config.get("max_position_embeddings", 512),
        num_segments=config.get("type_vocab_size", 2),
    )
    pairs = [
        ("token_embedding/embeddings", "embeddings.word_embeddings.weight"),
        (
            "position_embedding/embeddings",
            "embeddings.position_embeddings.weight",
        ),
        (
            "segment_embedding/embeddings",
            "embeddings.token_type_embeddings.weight",
        ),
        ("embeddings_layer_norm/gamma", "embeddings.LayerNorm.weight"),
        ("embeddings_layer_norm/beta", "embeddings.LayerNorm.bias"),
    ]
    if embedding != hidden:
        pairs += [
            ("embeddings_projection/kernel", "embeddings_project.weight"),
            ("embeddings_projection/bias", "embeddings_project.bias"),
        ]
    attention = (("query", "query"), ("key", "key"), ("value", "value"))
    for i in range(config["num_hidden_layers"]):
        pairs += _layer_pairs(
            f"transformer_layer_{i}", f"encoder.layer.{i}", attention
        )
    _port(backbone, pairs, _weights(preset), ("electra.", ""))
    return backbone


def _deberta_v3(preset, config):
    """A keras-hub `DebertaV3Backbone` with a DeBERTa-v3 checkpoint's
    weights."""
    max_relative = config.get("max_relative_positions", -1)
    if max_relative < 1:
        max_relative = config.get("max_position_embeddings", 512)
    backbone = keras_hub.models.DebertaV3Backbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config.get("hidden_dropout_prob", 0.1),
        # The span of the logarithmic position buckets.
        max_sequence_length=max_relative,
        bucket_size=config["position_buckets"],
    )
    pairs = [
        ("token_embedding/embeddings", "embeddings.word_embeddings.weight"),
        ("embeddings_layer_norm/gamma", "embeddings.LayerNorm.weight"),
        ("embeddings_layer_norm/beta", "embeddings.LayerNorm.bias"),
        ("rel_embedding/rel_embedding", "encoder.rel_embeddings.weight"),
        (
            "rel_embedding/rel_embeddings_layer_norm/gamma",
            "encoder.LayerNorm.weight",
        ),
        (
            "rel_embedding/rel_embeddings_layer_norm/beta",
            "encoder.LayerNorm.bias",
        ),
    ]
    attention = (
        ("query", "query_proj"),
        ("key", "key_proj"),
        ("value", "value_proj"),
    )
    for i in range(config["num_hidden_layers"]):
        pairs += _layer_pairs(
            f"disentangled_attention_encoder_layer_{i}",
            f"encoder.layer.{i}",
            attention,
        )
    _port(backbone, pairs, _weights(preset), ("deberta.", ""))
    return backbone


def _fold_roberta_token_type(backbone, preset):
    """Adds RoBERTa's token-type row, which PyTorch adds to every token and
    keras-hub's converter drops, to the position embeddings."""
    row = _weights(preset)(
        "embeddings.token_type_embeddings.weight", ("roberta.", "")
    )[0]
    table = backbone.embeddings.position_embedding.position_embeddings
    table.assign(table.numpy() + row)


def load_backbone(preset):
    """Loads a keras-hub backbone from `preset`: a Hugging Face encoder
    folder with the checkpoint's own activation and conventions (see the
    module docstring), anything else with `keras_hub.models.Backbone.
    from_preset`. `kfinetune.presets.backbone` calls it.

    Args:
        preset: a keras-hub preset handle or a local folder.

    Returns:
        A keras-hub backbone: the family's `HF...Backbone` when the
        checkpoint's activation differs from keras-hub's.

    Raises:
        ValueError: the checkpoint asks for an activation or convention
            keras-hub's backbone cannot follow, or has no safetensors file.

    Example:

    ```python
    backbone = kfinetune.hf_encoders.load_backbone("my-electra-folder")
    ```
    """
    config = read_config(preset)
    if config is None:
        return keras_hub.models.Backbone.from_preset(str(preset))
    check_conventions(preset, config)
    activation = checkpoint_activation(preset)
    model_type = config["model_type"]
    if model_type == "electra":
        backbone = _electra(preset, config)
    elif model_type == "deberta-v2":
        backbone = _deberta_v3(preset, config)
    else:
        backbone = keras_hub.models.Backbone.from_preset(str(preset))
    if model_type == "roberta":
        _fold_roberta_token_type(backbone, preset)
    conventions = CONVENTIONS[model_type]
    if activation == conventions.activation:
        return backbone
    return conventions.hf_class.from_backbone(backbone, activation)


def load_tokenizer(preset):
    """Loads the keras-hub tokenizer of `preset`, including Hugging Face
    ELECTRA and DeBERTa-v3 folders, whose tokenizer files keras-hub's
    `Tokenizer.from_preset` cannot convert.

    Args:
        preset: a keras-hub preset handle or a local folder.

    Returns:
        A keras-hub tokenizer: an `ElectraTokenizer` from an ELECTRA
        folder's `vocab.txt` (lowercasing as its `tokenizer_config.json`
        says, by default), a `DebertaV3Tokenizer` from a DeBERTa-v3
        folder's `spm.model`, and whatever `keras_hub.models.Tokenizer.
        from_preset` gives for anything else.

    Raises:
        ValueError: the folder lacks the family's tokenizer file.

    Example:

    ```python
    tokenizer = kfinetune.hf_encoders.load_tokenizer("my-electra-folder")
    tokenizer("the movie was great")
    ```
    """
    config = read_config(preset)
    model_type = config and config["model_type"]
    if model_type not in ("electra", "deberta-v2"):
        return keras_hub.models.Tokenizer.from_preset(str(preset))
    folder = pathlib.Path(str(preset))
    name = "vocab.txt" if model_type == "electra" else "spm.model"
    if not (folder / name).is_file():
        raise ValueError(
            f"A Hugging Face {model_type} folder keeps its tokenizer in "
            f"{name}, which {folder} lacks. Received: "
            f"preset={str(preset)!r}"
        )
    if model_type == "deberta-v2":
        return keras_hub.models.DebertaV3Tokenizer(proto=str(folder / name))
    settings = folder / "tokenizer_config.json"
    settings = json.loads(settings.read_text()) if settings.is_file() else {}
    return keras_hub.models.ElectraTokenizer(
        vocabulary=str(folder / name),
        lowercase=settings.get("do_lower_case", True),
    )


def text_classifier_classes(preset):
    """The text classifier and preprocessor classes to build for a Hugging
    Face folder keras-hub's `from_preset` cannot read: a DeBERTa-v3 folder
    (keras-hub has no converter for it) or an ELECTRA folder (keras-hub has
    neither a converter nor a classifier: kfinetune's
    `ElectraTextClassifier`). `kfinetune.presets.text_classifier` builds
    them from `load_backbone` and `load_tokenizer`.

    Args:
        preset: a keras-hub preset handle or a local folder.

    Returns:
        `(classifier class, preprocessor class)`, or `None` when
        keras-hub's `from_preset` reads the preset.

    Example:

    ```python
    kfinetune.hf_encoders.text_classifier_classes("my-deberta-folder")
    ```
    """
    config = read_config(preset)
    model_type = config and config["model_type"]
    if model_type == "electra":
        from kfinetune import electra_classifier

        return (
            electra_classifier.ElectraTextClassifier,
            electra_classifier.ElectraTextClassifierPreprocessor,
        )
    if model_type == "deberta-v2":
        return (
            keras_hub.models.DebertaV3TextClassifier,
            keras_hub.models.DebertaV3TextClassifierPreprocessor,
        )
    return None
