"""Hugging Face PEFT adapters in and out of Keras: load a LoRA adapter that
PEFT wrote for PyTorch's all-MiniLM-L6-v2, run it, then write a kfinetune
LoRA adapter in PEFT's format for `PeftModel.from_pretrained`.

    python examples/peft_hf.py [PEFT_FOLDER] [OUTPUT_FOLDER]

PEFT_FOLDER defaults to the fixture PEFT made for the tests
(`tests/fixtures/hf_peft/lora`), OUTPUT_FOLDER to `/tmp/kft_adapter`. The
output's `logits.json` holds kfinetune's logits, which
`tests/fixtures/hf_peft/make_fixtures.py MODEL --check OUTPUT_FOLDER`
compares with PyTorch's.
"""

import json
import pathlib
import sys

import keras
import numpy as np

import kfinetune as kft

ROOT = pathlib.Path(__file__).parents[1]
source = pathlib.Path(
    sys.argv[1] if len(sys.argv) > 1 else ROOT / "tests/fixtures/hf_peft/lora"
)
output = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/kft_adapter")
base_name = "sentence-transformers/all-MiniLM-L6-v2"

# In: PEFT -> Keras. The preset builds MiniLM with exact GELU, as PyTorch.
record = json.loads((source / "logits.json").read_text())
inputs = {
    k: np.array(record[k], "int32")
    for k in ("token_ids", "segment_ids", "padding_mask")
}
model = kft.presets.text_classifier(num_classes=2, sequence_length=16)
model = kft.peft.load_hf(model, source, base_model=base_name)
logits = keras.ops.convert_to_numpy(model(inputs, training=False))
difference = np.abs(logits - np.array(record["logits"])).max()
print(f"loaded {source}: max |Keras - PyTorch| logits = {difference:.2g}")

# Out: Keras -> PEFT. A new adapter (here with random factors, as after
# training) on query, value and the pooler, with the head.
keras.utils.set_random_seed(0)
model = kft.presets.text_classifier(num_classes=2, sequence_length=16)
model = kft.peft.apply(
    model,
    kft.peft.LoRAConfig(
        rank=8, alpha=16, targets=[r".*/(query|value)", "pooled_dense"]
    ),
)
for variable in model.trainable_weights:
    variable.assign(np.random.default_rng(0).normal(0, 0.05, variable.shape))
kft.peft.save_hf(model, output, base_model=base_name)
logits = keras.ops.convert_to_numpy(model(inputs, training=False))
(output / "logits.json").write_text(
    json.dumps({**record, "logits": logits.astype("float64").tolist()})
)
print(f"wrote {output}")
