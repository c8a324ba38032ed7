"""Step time of the layer-wise optimizer and of gradual unfreezing.

On the reference workload (`benchmarks.workloads`), one process, alternating
rounds:

- `adamw`: full fine-tuning with one AdamW (the baseline);
- `layerwise`: the same with `LayerwiseOptimizer` over 8 groups
  (embeddings, 6 blocks, head) and layer-wise decay 0.8 (target ≤ 1.02);
- `multi_optimizer`: Keras's `MultiOptimizer` with 8 AdamW sub-optimizers
  over the same groups (target: layerwise ≤ 1.00 × this);
- `unfreezing_head_stage`: the first stage of `GradualUnfreezing` in
  `retrace` mode, only the head trains (target ≤ 0.45 of adamw);
- `frozen_backbone`: the backbone frozen, for reference (0.43 of a full
  step in an earlier measurement): the head stage cannot be faster than
  this.

It also reports each optimizer's state size (number of scalars), which
should equal AdamW's over the same weights.

    python -m benchmarks.optimizer [--repeats 30] [--warmup 5]
"""

import argparse
import functools

import keras
import numpy as np

from benchmarks import harness
from benchmarks import report
from benchmarks import workloads
from kfinetune import callbacks
from kfinetune import optimizers

LEARNING_RATE = workloads.LEARNING_RATE


def _compile(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=None,
        jit_compile=True,
    )
    return model


def adamw():
    return _compile(
        workloads.load_classifier(), keras.optimizers.AdamW(LEARNING_RATE)
    )


def layerwise():
    model = workloads.load_classifier()
    groups = optimizers.layer_groups(model)
    return _compile(
        model,
        optimizers.LayerwiseOptimizer(
            keras.optimizers.AdamW(LEARNING_RATE), groups, decay=0.8
        ),
    )


def multi_optimizer():
    model = workloads.load_classifier()
    groups = optimizers.layer_groups(model)
    mapping = keras.optimizers.OptimizerMap(
        default_optimizer=keras.optimizers.AdamW(LEARNING_RATE),
        optimizer_map={
            "|".join(groups[name]): keras.optimizers.AdamW(LEARNING_RATE)
            for name in groups.names[:-1]
        },
    )
    return _compile(model, keras.optimizers.MultiOptimizer(mapping))


def unfreezing_head_stage():
    model = layerwise()
    groups = model.optimizer.groups
    unfreezing = callbacks.GradualUnfreezing(groups, verbose=0)
    unfreezing.set_model(model)
    unfreezing.on_train_begin()
    unfreezing.on_epoch_begin(0)
    return model


def frozen_backbone():
    """The floor for the head stage: the backbone frozen, AdamW."""
    model = workloads.load_classifier()
    model.backbone.trainable = False
    return _compile(model, keras.optimizers.AdamW(LEARNING_RATE))


BUILDERS = {
    "adamw": adamw,
    "layerwise": layerwise,
    "multi_optimizer": multi_optimizer,
    "unfreezing_head_stage": unfreezing_head_stage,
    "frozen_backbone": frozen_backbone,
}


def _state_size(model):
    return int(sum(np.prod(v.shape) for v in model.optimizer.variables))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.optimizer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)

    x, y = workloads.synthetic_batch()
    models, candidates = {}, {}
    for name, build in BUILDERS.items():
        keras.utils.set_random_seed(0)
        models[name] = build()
        candidates[name] = functools.partial(models[name].train_on_batch, x, y)
        print(f"built {name}", flush=True)
    timings = harness.compare(
        candidates, "adamw", warmup=args.warmup, repeats=args.repeats
    )
    payload = {
        "parameters": {
            **workloads.describe(),
            "groups": 8,
            "decay": 0.8,
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
        "baseline": "adamw",
        "results": {
            name: {
                "trainable_params": workloads.parameter_counts(model)[0],
                "total_params": workloads.parameter_counts(model)[1],
                "optimizer_state": _state_size(model),
                **timings[name],
            }
            for name, model in models.items()
        },
    }
    harness.write_json("optimizer", payload)
    print(report.render_results("optimizer", payload))


if __name__ == "__main__":
    main()
