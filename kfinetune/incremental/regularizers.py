"""`L2SP` and `EWC`: weight penalties that pull a variable toward an anchor."""

import keras
import numpy as np

from kfinetune import checks


def _float_array(name, value):
    array = np.asarray(keras.ops.convert_to_numpy(value))
    if not hasattr(value, "dtype"):
        # Python numbers (a config's lists) take Keras's float type, not
        # NumPy's float64.
        array = array.astype(keras.config.floatx())
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"`{name}` must be an array of floats. "
            f"Received: {name} with dtype {array.dtype}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"`{name}` must hold finite values only. Received: {name} with "
            f"{int(np.sum(~np.isfinite(array)))} non-finite values"
        )
    return array


@keras.saving.register_keras_serializable(package="kfinetune")
class L2SP(keras.regularizers.Regularizer):
    """Penalises the distance of a weight from its starting point (L2-SP).

    `strength / 2 * sum((w - anchor) ** 2)` (Li et al., 2018, "Explicit
    inductive bias for transfer learning"): plain L2 pulls weights toward
    zero, L2-SP toward the pretrained (or previously fine-tuned) values, so
    fine-tuning on new data keeps what the model knew.

    Set on a variable (`variable.regularizer = L2SP(...)`), Keras adds the
    penalty to the training loss of every model the variable is trainable
    in; `kfinetune.incremental.anchor` does that for a whole model.

    The config holds the anchor as nested lists, so a serialized `L2SP`
    rebuilds exactly but is as large as its weight: fine for a
    classification head, large for an embedding table. Layer configs do
    not include the regularizers set on their variables, so a model saved
    after `anchor` never stores them (it reloads without the penalty).

    Args:
        strength: the penalty coefficient, non-negative.
        anchor: the values to pull the weight toward, an array of the
            weight's shape.

    Example:

    ```python
    layer = model.get_layer("logits")
    layer.kernel.regularizer = kfinetune.incremental.L2SP(
        0.1, layer.kernel.numpy())
    ```
    """

    def __init__(self, strength, anchor):
        checks.at_least("strength", strength, 0)
        self.strength = float(strength)
        # An eager tensor, made once: a traced train step captures it as an
        # input, where a NumPy array would be copied into the graph (and
        # into the XLA program) as a constant of the weight's size.
        anchor = _float_array("anchor", anchor)
        self.anchor = keras.ops.convert_to_tensor(anchor)

    def _weights(self):
        return None

    def __call__(self, x):
        difference = keras.ops.cast(x, self.anchor.dtype) - self.anchor
        squares = keras.ops.square(difference)
        weights = self._weights()
        if weights is not None:
            squares = squares * weights
        return 0.5 * self.strength * keras.ops.sum(squares)

    def get_config(self):
        return {
            "strength": self.strength,
            "anchor": keras.ops.convert_to_numpy(self.anchor).tolist(),
        }


@keras.saving.register_keras_serializable(package="kfinetune")
class EWC(L2SP):
    """Elastic weight consolidation: an L2-SP penalty weighted by the Fisher.

    `strength / 2 * sum(fisher * (w - anchor) ** 2)` (Kirkpatrick et al.,
    2017): each element is held in place as firmly as the old task's
    log-likelihood depends on it, measured by the diagonal of the Fisher
    information (`kfinetune.incremental.fisher`), and elements the old task
    does not use stay free to learn the new one.

    Serialization as for `L2SP`: the config holds both arrays as lists.

    Args:
        strength: the penalty coefficient, non-negative.
        anchor: the values to pull the weight toward, an array of the
            weight's shape.
        fisher: the diagonal Fisher information of the weight, a
            non-negative array of the weight's shape.

    Example:

    ```python
    fisher = kfinetune.incremental.fisher(model, old_data.batch(1))
    kernel = model.get_layer("logits").kernel
    kernel.regularizer = kfinetune.incremental.EWC(
        100.0, kernel.numpy(), fisher[kernel.path])
    ```
    """

    def __init__(self, strength, anchor, fisher):
        super().__init__(strength, anchor)
        fisher = _float_array("fisher", fisher)
        if fisher.shape != tuple(self.anchor.shape):
            raise ValueError(
                "`fisher` must have the shape of `anchor` "
                f"{tuple(self.anchor.shape)}. Received: fisher with shape "
                f"{fisher.shape}"
            )
        if np.any(fisher < 0):
            raise ValueError(
                "`fisher` must be non-negative (a mean of squared "
                f"gradients). Received: fisher with minimum {fisher.min()}"
            )
        self.fisher = keras.ops.convert_to_tensor(
            fisher, dtype=self.anchor.dtype
        )

    def _weights(self):
        return self.fisher

    def get_config(self):
        return {
            **super().get_config(),
            "fisher": keras.ops.convert_to_numpy(self.fisher).tolist(),
        }
