"""One training process of the multi-worker tests.

LoRA on the small random BERT (dropout off), a `LayerwiseOptimizer` and
`GradualUnfreezing` (one stage per epoch), on a fixed dataset in global
batches of 8. With `--multi-worker`, under the
`MultiWorkerMirroredStrategy` of `TF_CONFIG`: worker `k` of 2 takes rows
`4k` to `4k + 3` of each global batch, so the two workers together see the
same global batches as a single process. Prints one `RESULT {json}` line;
the chief alone writes `--output`.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402

import kfinetune as kft  # noqa: E402
from kfinetune import distribute  # noqa: E402
from kfinetune import testing  # noqa: E402

GLOBAL_BATCH = 8
ROWS = 32
EPOCHS = 3


def data():
    x = testing.small_bert_inputs(batch_size=ROWS, seed=1)
    y = (np.arange(ROWS) % 2).astype("int32")
    return x, y


def dataset():
    """Global batches of 8, the same on every worker.

    Under `MultiWorkerMirroredStrategy`, Keras distributes the dataset with
    `experimental_distribute_dataset`; the `DATA` shard policy splits each
    global batch into one part per replica (rows `4k` to `4k + 3` of each
    global batch for worker `k` of 2), rather than giving each worker
    whole batches of its own (the `FILE`/`AUTO` policy on in-memory data
    falls back to that `DATA` split too, but here it is explicit).
    """
    x, y = data()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(GLOBAL_BATCH)
        .repeat()
        .with_options(options)
    )


class Record(keras.callbacks.Callback):
    def __init__(self, pause_at=None):
        super().__init__()
        self.losses = []
        self.pause_at = pause_at
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.pause_at == (self.epoch, batch):
            # The test kills this process here, by pid.
            print("PAUSED", flush=True)
            time.sleep(600)

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--multi-worker", action="store_true")
    parser.add_argument("--output", required=True)
    parser.add_argument("--backup")
    parser.add_argument("--pause-at", help="worker:epoch:batch")
    parser.add_argument("--join-timeout", type=float, default=60)
    args = parser.parse_args()
    if args.multi_worker:
        strategy = distribute.multi_worker_strategy(timeout=args.join_timeout)
    else:
        strategy = tf.distribute.get_strategy()
    worker = 0
    if args.multi_worker:
        worker = strategy.cluster_resolver.task_id
    pause_at = None
    if args.pause_at:
        who, epoch, batch = map(int, args.pause_at.split(":"))
        pause_at = (epoch, batch) if who == worker else None

    with strategy.scope():
        model = testing.small_bert_classifier(seed=0)
        model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=4, alpha=8))
        groups = kft.optimizers.layer_groups(model)
        optimizer = kft.optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(1e-2), groups, decay=0.5
        )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    record = Record(pause_at)
    callbacks = [
        kft.callbacks.GradualUnfreezing(groups, every=1, verbose=0),
        record,
    ]
    if args.backup:
        callbacks.insert(0, distribute.ChiefBackupAndRestore(args.backup))
    model.fit(
        dataset(),
        epochs=EPOCHS,
        steps_per_epoch=ROWS // GLOBAL_BATCH,
        callbacks=callbacks,
        verbose=0,
    )
    weights = [np.asarray(v.numpy()).tolist() for v in model.weights]
    result = {
        "worker": worker,
        "chief": distribute.is_chief(strategy),
        "losses": record.losses,
        "weights_sum": float(sum(np.sum(np.abs(w)) for w in weights)),
    }
    if result["chief"]:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "weights.json"), "w") as f:
            json.dump(weights, f)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
