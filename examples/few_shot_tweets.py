"""A few-shot learning curve of the bundled MiniLM on the binary tweets:
test accuracy against labelled tweets per class, for full fine-tuning,
LoRA, prompt tuning and a linear probe, mean ± std over seeds.

The defaults are the benchmark's (4 methods × 4 k × 3 seeds = 48 runs,
about a minute each on a CPU). A quick look:

python examples/few_shot_tweets.py --ks 8 32 --seeds 1 --methods full lora
    --steps 20 --test-size 200

python examples/few_shot_tweets.py [--ks 8 16 32 64] [--seeds 3]
    [--methods full lora prompt linear_probe] [--steps 100]
    [--test-size 1000] [--out few_shot.png]
"""

import argparse
import json
import logging
import pathlib

import kfinetune as kft

METHODS = {
    "full": kft.recipes.FewShotMethod.full,
    "lora": kft.recipes.FewShotMethod.lora,
    "prompt": kft.recipes.FewShotMethod.prompt,
    "linear_probe": kft.recipes.FewShotMethod.linear_probe,
}

parser = argparse.ArgumentParser()
parser.add_argument("--ks", nargs="+", type=int, default=[8, 16, 32, 64])
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument(
    "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
)
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--test-size", type=int, default=1000)
parser.add_argument("--out", default="few_shot.png")
args = parser.parse_args()
# Every run builds a new model and so new tf.functions, which TensorFlow
# warns about as retracing.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

# One fixed split: the seeds change the labelled sample, the head's
# initialisation and the dropout, not the test tweets.
data = kft.data.tweet_sentiment(
    classes=2, seed=0, validation_size=0, test_size=args.test_size
)
print(kft.data.few_shot(data, k=max(args.ks), seed=0))

curve = kft.recipes.few_shot_curve(
    lambda: kft.presets.text_classifier(num_classes=2, sequence_length=64),
    data,
    ks=args.ks,
    seeds=args.seeds,
    methods={name: METHODS[name]() for name in args.methods},
    steps=args.steps,
    jit_compile=True,
)
print(curve)
print(f"wrote {curve.plot(args.out)}")
json_path = pathlib.Path(args.out).with_suffix(".json")
json_path.write_text(json.dumps(curve.to_dict(), indent=2) + "\n")
print(f"wrote {json_path}")
