"""`GroupLearningRates`: each layer group's learning rate in the logs."""

import keras

from kfinetune.callbacks.stages import layerwise_optimizer


@keras.saving.register_keras_serializable(package="kfinetune")
class GroupLearningRates(keras.callbacks.Callback):
    """Adds every group's current learning rate to the epoch logs.

    The logs then carry `lr/<group>` entries, which `keras.callbacks.
    TensorBoard` writes as scalars and `CSVLogger` as columns. Put this
    callback before the TensorBoard callback. The model's optimizer must be
    a `LayerwiseOptimizer` (optionally inside a `LossScaleOptimizer`).

    Example:

    ```python
    model.fit(
        train,
        epochs=3,
        callbacks=[
            kfinetune.callbacks.GroupLearningRates(),
            keras.callbacks.TensorBoard("logs/"),
        ],
    )
    ```
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = layerwise_optimizer(self.model, "GroupLearningRates")
        for name in optimizer.groups.names:
            logs[f"lr/{name}"] = float(optimizer.group_learning_rate(name))

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
