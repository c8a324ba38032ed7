"""`HFBertBackbone`: a keras-hub BERT with a Hugging Face checkpoint's own
feed-forward activation.

keras-hub's `BertBackbone` always uses the tanh approximation of GELU, but
Hugging Face BERT checkpoints whose `config.json` says `"hidden_act":
"gelu"` (all-MiniLM-L6-v2 among them) were trained with exact (erf) GELU.
On the bundled MiniLM the approximation moves the hidden states by up to
6.5e-3 and the pooled output by 1.8e-4; with exact GELU the pooled output
matches PyTorch's within 2.2e-7.
"""

import json
import pathlib

import keras
import keras_hub

from kfinetune import compat

# kfinetune's names of the feed-forward activations, and the functions.
# `gelu_approximate` is keras-hub's own (the encoders keep theirs).
ACTIVATIONS = {
    "gelu": keras.activations.gelu,  # `approximate=False`: exact (erf).
    "gelu_approximate": None,
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


@keras.saving.register_keras_serializable(package="kfinetune")
class HFBertBackbone(keras_hub.models.BertBackbone):
    """A keras-hub `BertBackbone` whose feed-forward layers use `activation`.

    The same model as `keras_hub.models.BertBackbone` (same layers, weights
    and outputs), except for the activation of every transformer layer's
    feed-forward network, which keras-hub fixes to the tanh approximation
    of GELU. `kfinetune.presets` builds this class when a Hugging Face
    checkpoint's `config.json` asks for another activation (exact GELU for
    all-MiniLM-L6-v2 and most BERT checkpoints); the activation is part of
    the config, so it survives `.keras` saving and loading, `PEFTModel`
    rebuilding and export.

    Args:
        activation: the feed-forward activation: `"gelu"` (exact, with
            erf), `"gelu_approximate"` (keras-hub's tanh approximation),
            `"relu"` or `"silu"`. Defaults to `"gelu"`.
        **kwargs: the arguments of `keras_hub.models.BertBackbone`
            (`vocabulary_size`, `num_layers`, `num_heads`, `hidden_dim`,
            `intermediate_dim`, ...).

    Example:

    ```python
    backbone = kfinetune.presets.HFBertBackbone(
        vocabulary_size=30522,
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        activation="gelu",
    )
    ```
    """

    def __init__(self, *args, activation="gelu", **kwargs):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {sorted(ACTIVATIONS)}. "
                f"Received: activation={activation!r}"
            )
        super().__init__(*args, **kwargs)
        self.activation = activation
        function = ACTIVATIONS[activation]
        if function is not None:
            for layer in self.transformer_layers:
                compat.set_feedforward_activation(layer, function)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}

    @classmethod
    def from_backbone(cls, backbone, activation):
        """An `HFBertBackbone` with the config and weights of `backbone` (a
        `keras_hub.models.BertBackbone`) and the given `activation`.

        Args:
            backbone: a built `keras_hub.models.BertBackbone`.
            activation: see the class arguments.

        Returns:
            A new `HFBertBackbone`; `backbone` is unchanged.

        Example:

        ```python
        exact = kfinetune.presets.HFBertBackbone.from_backbone(
            backbone, "gelu"
        )
        ```
        """
        if not isinstance(backbone, keras_hub.models.BertBackbone):
            raise ValueError(
                "`backbone` must be a keras_hub.models.BertBackbone. "
                f"Received: backbone={type(backbone).__name__}"
            )
        config = {
            k: v for k, v in backbone.get_config().items() if k != "activation"
        }
        new = cls(**config, activation=activation)
        new.set_weights(backbone.get_weights())
        return new


def checkpoint_activation(preset):
    """The feed-forward activation a Hugging Face BERT checkpoint folder
    asks for, as a key of `ACTIVATIONS`, or `None` when `preset` is not a
    local Hugging Face BERT folder.

    Raises:
        ValueError: the checkpoint's `hidden_act` has no Keras equivalent.
    """
    config_file = pathlib.Path(str(preset)) / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    if config.get("model_type") != "bert":
        return None
    hidden_act = config.get("hidden_act", "gelu")
    if hidden_act not in HF_ACTIVATIONS:
        raise ValueError(
            f"The checkpoint's `hidden_act` ({config_file}) has no Keras "
            f"equivalent in kfinetune; supported: {sorted(HF_ACTIVATIONS)}. "
            f"Received: hidden_act={hidden_act!r}"
        )
    return HF_ACTIVATIONS[hidden_act]


def load_backbone(preset):
    """Loads a keras-hub backbone from `preset`, with the checkpoint's own
    feed-forward activation when it is a Hugging Face BERT folder."""
    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    activation = checkpoint_activation(preset)
    if activation is None or activation == "gelu_approximate":
        return backbone
    if type(backbone) is not keras_hub.models.BertBackbone:
        return backbone
    return HFBertBackbone.from_backbone(backbone, activation)
