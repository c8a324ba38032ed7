"""LoRA fine-tuning of the bundled MiniLM with multi-worker data
parallelism: every worker runs this script, with its own `TF_CONFIG`.

On one machine (two local workers, output prefixed `[worker i]`):

    python -m kfinetune.launch --workers 2 examples/multi_worker_lora.py

On a cluster, run the same script on every host with that host's
`TF_CONFIG` (docs/multi-worker.md), and a backup directory all hosts can
read, e.g. `--backup gs://bucket/run1/backup`.
"""

import argparse
import os

import keras
import tensorflow as tf

import kfinetune as kft
from kfinetune import distribute

parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", default="runs/multi_worker_lora")
parser.add_argument("--backup", default="runs/multi_worker_lora/backup")
parser.add_argument("--global-batch-size", type=int, default=32)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

# Waits at most 120 s for every worker of TF_CONFIG to start.
strategy = distribute.multi_worker_strategy(timeout=120)
data = kft.data.tweet_sentiment(classes=2, seed=0)
# Each global batch is split between the workers (the DATA shard policy):
# together they see the batches one process would.
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA
)
train = data.train.batch(args.global_batch_size).with_options(options)

with strategy.scope():
    model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
    model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=8, alpha=16))
    groups = kft.optimizers.layer_groups(model)
    optimizer = kft.optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(1e-3), groups, decay=0.9
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

model.fit(
    train,
    epochs=args.epochs,
    callbacks=[
        # Every worker restores the chief's backup; only the chief writes.
        distribute.ChiefBackupAndRestore(args.backup),
        kft.callbacks.GradualUnfreezing(groups, every=1, verbose=1),
    ],
    # Only the chief prints a progress bar.
    verbose=1 if distribute.is_chief(strategy) else 0,
)
if distribute.is_chief(strategy):
    os.makedirs(args.output_dir, exist_ok=True)
    kft.peft.save(model, os.path.join(args.output_dir, "lora.adapter.h5"))
