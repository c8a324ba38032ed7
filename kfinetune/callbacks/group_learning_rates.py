"""`GroupLearningRates`: each layer group's learning rate in the logs."""

import keras

from kfinetune.optimizers.layerwise_optimizer import LayerwiseOptimizer


class GroupLearningRates(keras.callbacks.Callback):
    """Adds every group's current learning rate to the epoch logs.

    The logs then carry `lr/<group>` entries, which `keras.callbacks.
    TensorBoard` writes as scalars and `CSVLogger` as columns. Put this
    callback before the TensorBoard callback.

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
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if not isinstance(optimizer, LayerwiseOptimizer):
            raise ValueError(
                "GroupLearningRates needs a model compiled with a "
                "kfinetune.optimizers.LayerwiseOptimizer. Received: "
                f"optimizer={type(optimizer).__name__}"
            )
        for name in optimizer.groups.names:
            logs[f"lr/{name}"] = float(optimizer.group_learning_rate(name))
