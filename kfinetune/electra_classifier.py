"""`ElectraTextClassifier`: the text classifier keras-hub lacks for ELECTRA.

keras-hub 0.32 ships an `ElectraBackbone` and an `ElectraTokenizer` but no
ELECTRA classifier or preprocessor. These two subclass keras-hub's
`TextClassifier` and `TextClassifierPreprocessor` for the ELECTRA backbone,
so `keras_hub.models.TextClassifier.from_preset` finds them for an ELECTRA
preset (keras-hub looks up the subclass whose `backbone_cls` matches), as
it finds `BertTextClassifier` for a BERT one.
"""

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="kfinetune")
class ElectraTextClassifierPreprocessor(
    keras_hub.models.TextClassifierPreprocessor
):
    """keras-hub's text classifier preprocessor with an `ElectraTokenizer`.

    It packs like BERT's (`[CLS] a [SEP] b [SEP]`, `segment_ids` 0 then 1)
    and gives `token_ids`, `segment_ids` and `padding_mask`.

    It takes the arguments of `keras_hub.models.TextClassifierPreprocessor`:
    `tokenizer` (a `keras_hub.models.ElectraTokenizer`), `sequence_length`
    (the padded length, `512` by default) and `truncate` (how a pair is cut
    to fit: `"round_robin"`, the default, or `"waterfall"`).

    Example:

    ```python
    tokenizer = keras_hub.models.ElectraTokenizer(vocabulary=vocabulary)
    preprocessor = kfinetune.presets.ElectraTextClassifierPreprocessor(
        tokenizer, sequence_length=64)
    ```
    """

    backbone_cls = keras_hub.models.ElectraBackbone
    tokenizer_cls = keras_hub.models.ElectraTokenizer


@keras.saving.register_keras_serializable(package="kfinetune")
class ElectraTextClassifier(keras_hub.models.TextClassifier):
    """A text classifier on an `ElectraBackbone`, with Hugging Face's head.

    Hugging Face's `ElectraForSequenceClassification` does not read the
    backbone's pooler (keras-hub's `ElectraBackbone` has one, Hugging Face's
    `ElectraModel` has none): its head is the first token's (`[CLS]`)
    hidden state, dropout, a dense layer of the hidden size with exact
    GELU, dropout, and the logits. This is that head, so a fine-tuned
    ELECTRA classifier has the same layers on both sides.

    Args:
        backbone: a `keras_hub.models.ElectraBackbone`.
        num_classes: the number of classes, at least 2.
        preprocessor: an `ElectraTextClassifierPreprocessor`, or `None`
            for a model that takes token ids. Defaults to `None`.
        activation: the activation of the logits, e.g. `"softmax"`.
            Defaults to `None` (logits).
        hidden_dim: the size of the dense layer before the logits.
            Defaults to `None` (the backbone's hidden size).
        dropout: dropout rate before each of the two dense layers.
            Defaults to `0.1`, as Hugging Face's ELECTRA.
        **kwargs: `keras.Model` arguments.

    Raises:
        ValueError: `backbone` is not an `ElectraBackbone`, or
            `num_classes` is not an integer of at least 2.

    Example:

    ```python
    backbone = kfinetune.testing.small_backbone("electra")
    model = kfinetune.presets.ElectraTextClassifier(backbone, num_classes=3)
    model.predict(backbone_inputs)  # (batch, 3) logits
    ```
    """

    backbone_cls = keras_hub.models.ElectraBackbone
    preprocessor_cls = ElectraTextClassifierPreprocessor

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        activation=None,
        hidden_dim=None,
        dropout=0.1,
        **kwargs,
    ):
        if not isinstance(backbone, keras_hub.models.ElectraBackbone):
            raise ValueError(
                "`ElectraTextClassifier` needs a keras-hub `ElectraBackbone`"
                f". Received: backbone={type(backbone).__name__}"
            )
        if (
            not isinstance(num_classes, int)
            or isinstance(num_classes, bool)
            or num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer of at least 2. "
                f"Received: num_classes={num_classes!r}"
            )
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        hidden_dim = hidden_dim or backbone.hidden_dim
        self.pooled_dropout = keras.layers.Dropout(
            dropout, dtype=backbone.dtype_policy, name="pooled_dropout"
        )
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            activation="gelu",
            # Hugging Face initialises ELECTRA's dense layers this way.
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="pooled_dense",
        )
        self.output_dropout = keras.layers.Dropout(
            dropout, dtype=backbone.dtype_policy, name="output_dropout"
        )
        self.output_dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            activation=activation,
            dtype=backbone.dtype_policy,
            name="logits",
        )

        # === Functional model ===
        inputs = backbone.input
        x = backbone(inputs)["sequence_output"][:, backbone.cls_token_index, :]
        x = self.pooled_dropout(x)
        x = self.pooled_dense(x)
        x = self.output_dropout(x)
        outputs = self.output_dense(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.activation = keras.activations.get(activation)
        self.hidden_dim = hidden_dim
        self.dropout = dropout

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "activation": keras.activations.serialize(self.activation),
                "hidden_dim": self.hidden_dim,
                "dropout": self.dropout,
            }
        )
        return config
