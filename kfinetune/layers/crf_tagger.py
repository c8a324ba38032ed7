"""`CRFTagger`: a functional model ending in a `CRF` whose `evaluate`
reports the training loss."""

import keras

from kfinetune import compat
from kfinetune.layers.crf import CRF
from kfinetune.layers.crf import decode_potentials


@keras.saving.register_keras_serializable(package="kfinetune")
class CRFTagger(keras.Model):
    """A functional model whose output layer is a `kfinetune.layers.CRF`.

    Build it like any functional model, `CRFTagger(inputs, outputs)`, with
    `outputs` the CRF's output. It behaves as `keras.Model(inputs,
    outputs)` does (`predict`, `model(x)` and `model.export` give the
    Viterbi tags; `fit` minimises `CRFLoss`, the negative log-likelihood)
    with one difference: **`evaluate` and `val_loss` report the negative
    log-likelihood too**, the quantity `fit` minimises, so
    `EarlyStopping`, `ReduceLROnPlateau` and `ModelCheckpoint` watching
    `val_loss` act on the training objective. (In a plain functional model
    `evaluate` sees only the decoded tags, from which `CRFLoss` can give
    the tag error rate but not the likelihood.) Compiled metrics, such as
    `"accuracy"`, still see the decoded tags.

    The price: in `evaluate`, the layers before the CRF run twice per
    batch, once for the tags (the metrics) and once for the likelihood, so
    evaluation takes about twice as long as `predict`. Training is
    unchanged.

    `kfinetune.presets.token_classifier(crf=True)` returns one.

    Args:
        inputs: the model inputs, as for `keras.Model`.
        outputs: the output of a `CRF` layer called on these inputs.
        name: the model name. Defaults to `None`.
        **kwargs: other `keras.Model` arguments.

    Example:

    ```python
    inputs = keras.Input((None, 8))
    crf = kfinetune.layers.CRF(5)
    model = kfinetune.layers.CRFTagger(
        inputs, crf(keras.layers.Dense(5)(inputs)))
    model.compile("adam", loss=kfinetune.layers.CRFLoss())
    model.fit(x, tags, validation_data=(x_val, tags_val))  # val_loss: NLL
    ```
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        crf = self.layers[-1] if self.layers else None
        if not isinstance(crf, CRF) or not isinstance(
            self.output, keras.KerasTensor
        ):
            raise ValueError(
                "`CRFTagger` needs one output, the output of a "
                "`kfinetune.layers.CRF` layer. Received: "
                f"outputs={outputs!r}"
            )
        self._emissions = None

    @property
    def crf(self):
        """The model's `CRF` layer."""
        return self.layers[-1]

    def potentials(self, x):
        """The CRF's training output for inputs `x` (what `CRFLoss`
        reads), computed in inference mode (no dropout).

        Args:
            x: model inputs, as for `predict`.

        Returns:
            The packed potentials of `kfinetune.layers.CRF`.
        """
        if self._emissions is None:
            args, kwargs = compat.call_arguments(self.crf)
            tensors = {"inputs": args[0]}
            tensors.update(
                (key, value)
                for key, value in kwargs.items()
                if isinstance(value, keras.KerasTensor)
            )
            # Not an attribute Keras tracks: the sub-model shares this
            # model's layers and must not appear as a layer of its own.
            object.__setattr__(
                self, "_emissions", keras.Model(self.input, tensors)
            )
        tensors = self._emissions(x, training=False)
        emissions = tensors.pop("inputs")
        return self.crf(emissions, training=True, **tensors)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not training:
            y_pred = self.potentials(x)
        return super().compute_loss(
            x, y, y_pred, sample_weight, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if len(y_pred.shape) == 3:
            # `fit`: the potentials. Without compiled metrics nothing reads
            # the tags, and TensorFlow drops the decoding from the step.
            y_pred = decode_potentials(y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)
