"""The reference workload and the variants the benchmarks compare.

MiniLM-L6 (6 layers, hidden 384, 12 heads, FFN 1536) with its real bundled
weights as a `BertTextClassifier`, batch 16, sequence length 128, AdamW,
compiled with `jit_compile=True`: Keras turns XLA off by default on
CPU-only machines, and XLA is what TPUs run.

A variant is a function that takes a freshly loaded classifier and returns
the model to train (kfinetune's `peft.apply` returns the model to use, so
variants do too). Adding one is a function and a line in `VARIANTS`.
"""

import keras
import keras_hub
import numpy as np

from kfinetune import peft
from kfinetune import presets

BATCH_SIZE = 16
SEQUENCE_LENGTH = 128
NUM_CLASSES = 2
LEARNING_RATE = 2e-5
LORA_RANK = 8
# keras-hub's default targets for BERT are also "query" and "value" (its
# list adds the names other architectures use); spelled out so that every
# LoRA variant is compared at the same targets.
LORA_TARGETS = ("query", "value")
ADAPTER_SIZE = 48
PREFIX_LENGTH = 16
PROMPT_LENGTH = 20


def full(model):
    """Full fine-tuning: every weight trains."""
    return model


def keras_lora(model, rank=LORA_RANK):
    """keras-hub's built-in LoRA on query and value, the head trainable.

    `enable_lora` freezes the backbone except the LoRA factors and the
    biases of the targeted layers; the `logits` head, outside the backbone,
    stays trainable. Its A factors of the 3-D query and value kernels have
    shape `(hidden, heads, rank)`: 445k LoRA weights on MiniLM, not the
    standard 74k (6× more).
    """
    model.backbone.enable_lora(rank, target_layer_names=list(LORA_TARGETS))
    return model


def frozen(model):
    """A linear probe: the backbone frozen, only the head trains."""
    model.backbone.trainable = False
    return model


def lora(model, rank=LORA_RANK):
    """kfinetune LoRA on query and value (standard d×r and r×d factors,
    computed factored), alpha = 2·rank, the head trainable."""
    return peft.apply(model, peft.LoRAConfig(rank=rank, alpha=2 * rank))


def dora(model, rank=LORA_RANK):
    """`lora` with DoRA's trainable magnitudes (`use_dora=True`)."""
    return peft.apply(
        model, peft.LoRAConfig(rank=rank, alpha=2 * rank, use_dora=True)
    )


def rslora(model, rank=LORA_RANK):
    """`lora` scaled by alpha / sqrt(rank) (`use_rslora=True`)."""
    return peft.apply(
        model, peft.LoRAConfig(rank=rank, alpha=2 * rank, use_rslora=True)
    )


def pissa(model, rank=LORA_RANK):
    """`lora` started from the kernels' top singular vectors
    (`init="pissa"`), the rest of each kernel left in the base."""
    return peft.apply(
        model, peft.LoRAConfig(rank=rank, alpha=2 * rank, init="pissa")
    )


def houlsby(model, size=ADAPTER_SIZE):
    """kfinetune Houlsby bottleneck adapters after attention and
    feed-forward in every block, the head trainable."""
    return peft.apply(model, peft.AdapterConfig(size=size))


def ia3(model):
    """kfinetune IA3 on keys, values and the feed-forward activation, the
    head trainable."""
    return peft.apply(model, peft.IA3Config())


def prefix(model, length=PREFIX_LENGTH):
    """kfinetune prefix tuning in every attention layer, with the MLP
    reparameterisation (hidden 512), the head trainable."""
    return peft.apply(model, peft.PrefixConfig(length=length))


def prompt(model, length=PROMPT_LENGTH):
    """kfinetune prompt tuning: soft prompts after [CLS], started from
    random vocabulary embeddings, the head trainable."""
    return peft.apply(model, peft.PromptConfig(length=length, init="vocab"))


def lora_int8(model, rank=LORA_RANK):
    """kfinetune LoRA as `lora`, over a backbone quantized to int8 with
    Keras's `backbone.quantize("int8")` (QLoRA-style): every Dense,
    EinsumDense and embedding of the backbone holds int8 kernels and float
    scales; the head stays float."""
    model.backbone.quantize("int8")
    return lora(model, rank)


def full_remat(model):
    """Full fine-tuning with every transformer block rematerialised
    (`kfinetune.peft.remat`)."""
    peft.remat(model)
    return model


def lora_remat(model, rank=LORA_RANK):
    """kfinetune LoRA as `lora`, with every transformer block
    rematerialised (`kfinetune.peft.remat`)."""
    model = lora(model, rank)
    peft.remat(model)
    return model


VARIANTS = {
    "full": full,
    "keras_lora": keras_lora,
    "frozen": frozen,
    "lora": lora,
    "dora": dora,
    "rslora": rslora,
    "pissa": pissa,
    "houlsby": houlsby,
    "ia3": ia3,
    "prefix": prefix,
    "prompt": prompt,
    "lora_int8": lora_int8,
    "full_remat": full_remat,
    "lora_remat": lora_remat,
}


def load_classifier(num_classes=NUM_CLASSES):
    """Loads MiniLM with its pretrained weights and a new, untrained head.

    No preprocessor: the benchmarks feed token ids.
    """
    return keras_hub.models.BertTextClassifier.from_preset(
        str(presets.minilm_path()),
        num_classes=num_classes,
        preprocessor=None,
    )


def build(variant, learning_rate=LEARNING_RATE, seed=0):
    """Loads, configures and compiles the reference model for a variant.

    Args:
        variant: a key of `VARIANTS`.
        learning_rate: the AdamW learning rate. Defaults to `2e-5`.
        seed: seeds the new head's initial weights and dropout. Defaults
            to `0`.

    Returns:
        The compiled model.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"`variant` must be one of {sorted(VARIANTS)}. "
            f"Received: variant={variant!r}"
        )
    keras.utils.set_random_seed(seed)
    model = VARIANTS[variant](load_classifier())
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # keras-hub tasks add an accuracy metric unless told otherwise;
        # the benchmark times the training step alone.
        metrics=None,
        jit_compile=True,
    )
    return model


def synthetic_batch(
    batch_size=BATCH_SIZE, sequence_length=SEQUENCE_LENGTH, seed=0
):
    """A batch of random token ids padded like real text, and labels.

    Each sequence is `[CLS]`, ordinary word-piece ids and `[SEP]`, of a
    length drawn between a quarter of the window and all of it, then
    padding. Under XLA the cost does not depend on the ids or the padding
    (shapes are static and attention is masked, not skipped); realistic
    padding keeps the masks and the loss honest.

    Returns:
        A tuple `(x, y)`: `x` a dict of `token_ids`, `padding_mask` and
        `segment_ids`, each an int32 tensor of shape
        `(batch_size, sequence_length)`; `y` int32 labels of shape
        `(batch_size,)`.
    """
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(
        str(presets.minilm_path())
    )
    special = (
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
        tokenizer.mask_token_id,
    )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(
        sequence_length // 4, sequence_length + 1, size=batch_size
    )
    token_ids = np.full(
        (batch_size, sequence_length), tokenizer.pad_token_id, "int32"
    )
    for row, length in zip(token_ids, lengths, strict=True):
        row[0] = tokenizer.cls_token_id
        row[1 : length - 1] = rng.integers(
            max(special) + 1, tokenizer.vocabulary_size(), size=length - 2
        )
        row[length - 1] = tokenizer.sep_token_id
    padding_mask = np.arange(sequence_length) < lengths[:, None]
    x = {
        "token_ids": token_ids,
        "padding_mask": padding_mask.astype("int32"),
        "segment_ids": np.zeros_like(token_ids),
    }
    y = rng.integers(0, NUM_CLASSES, size=batch_size).astype("int32")
    # Converted once so that the timed steps do not convert NumPy inputs.
    return (
        {name: keras.ops.convert_to_tensor(v) for name, v in x.items()},
        keras.ops.convert_to_tensor(y),
    )


def describe():
    """The workload's settings, for a result's `parameters`."""
    return {
        "model": "all-MiniLM-L6-v2 (BertTextClassifier, 2 classes)",
        "batch_size": BATCH_SIZE,
        "sequence_length": SEQUENCE_LENGTH,
        "optimizer": f"AdamW({LEARNING_RATE})",
        "loss": "SparseCategoricalCrossentropy(from_logits=True)",
        "jit_compile": True,
        "lora_rank": LORA_RANK,
        "lora_targets": list(LORA_TARGETS),
        "adapter_size": ADAPTER_SIZE,
    }


def variable_bytes(model):
    """The bytes held by a model's variables (each dtype's size × its
    number of elements; int8 kernels count one byte per weight)."""
    return sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.weights
    )


def parameter_counts(model):
    """Returns `(trainable, total)` numbers of scalar weights."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    return trainable, total


def timed_results(models, timings):
    """`{name: parameter counts and timings}` for a benchmark's JSON."""
    results = {}
    for name, model in models.items():
        trainable, total = parameter_counts(model)
        results[name] = {
            "trainable_params": trainable,
            "total_params": total,
            **timings[name],
        }
    return results
