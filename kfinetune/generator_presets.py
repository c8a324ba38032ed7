"""Pretrained generators: keras-hub causal and sequence-to-sequence LMs.

`kfinetune.presets.causal_lm` and `kfinetune.presets.seq2seq_lm` build a
keras-hub `CausalLM` / `Seq2SeqLM` task from a keras-hub preset (a name
such as `"gpt2_base_en"`, a Kaggle handle, or a folder written by
`save_to_preset`) or from a local Hugging Face folder (`config.json` and
safetensors weights, read by keras-hub's converters). No generator ships
inside an installable wheel, so kfinetune bundles none: the preset is
always the user's.

keras-hub builds each architecture with one feed-forward activation (GPT-2
and Gemma the tanh approximation of GELU, Llama, Mistral and Qwen SiLU,
BART exact GELU) whatever a Hugging Face `config.json` names. A checkpoint
trained with another activation would load without an error and give other
outputs, so a folder whose activation differs is refused.
"""

import json
import pathlib

import keras_hub

from kfinetune import checks

# For each Hugging Face `model_type` keras-hub converts to a generator: the
# `config.json` key naming the feed-forward activation, its default when
# absent, and the values that name what keras-hub computes.
_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
_SILU = ("silu", "swish")
_ACTIVATIONS = {
    "gpt2": ("activation_function", "gelu_new", _TANH_GELU),
    "llama": ("hidden_act", "silu", _SILU),
    "mistral": ("hidden_act", "silu", _SILU),
    "qwen2": ("hidden_act", "silu", _SILU),
    # Hugging Face's Gemma uses `hidden_activation` and, when it is unset,
    # the tanh approximation whatever `hidden_act` says.
    "gemma": ("hidden_activation", "gelu_pytorch_tanh", _TANH_GELU),
    "bart": ("activation_function", "gelu", ("gelu",)),
}
# Files that hold a tokenizer in a Hugging Face folder or a keras-hub preset
# folder.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def causal_lm(preset, sequence_length=None, dtype=None):
    """Builds a pretrained keras-hub causal LM (a decoder-only generator).

    Works for every keras-hub `CausalLM` whose preset or Hugging Face
    folder keras-hub reads: GPT-2, Llama (Hugging Face `llama` folders load
    as keras-hub's Llama 3 classes), Gemma, Mistral and Qwen among them.
    The task reads raw strings (`fit`, `generate`) when the preset has a
    tokenizer; a folder without one gives a task with `preprocessor=None`
    that takes token ids (`{"token_ids", "padding_mask"}`).

    Args:
        preset: a keras-hub preset name or handle, or a local folder: a
            keras-hub preset or a Hugging Face checkpoint (`config.json`
            and safetensors weights).
        sequence_length: the length the preprocessor pads or truncates
            every text to, at most the model's position limit (1,024 for
            GPT-2). Defaults to the preset's own (1,024 for most).
        dtype: the dtype or dtype policy of the weights and computation,
            such as `"bfloat16"`. Defaults to the global policy.

    Returns:
        A `keras_hub.models.CausalLM` (for example a `GPT2CausalLM` or a
        `Llama3CausalLM`).

    Raises:
        ValueError: `sequence_length` is not a positive integer or exceeds
            the model's positions; the preset has no tokenizer and
            `sequence_length` was given; a Hugging Face folder's activation
            is not the one keras-hub builds.

    Example:

    ```python
    lm = kfinetune.presets.causal_lm("path/to/hf_llama_folder",
                                     sequence_length=256)
    lm = kfinetune.peft.apply(lm, kfinetune.peft.LoRAConfig(rank=8))
    lm.compile(optimizer=keras.optimizers.AdamW(2e-4),
               loss=keras.losses.SparseCategoricalCrossentropy(
                   from_logits=True),
               weighted_metrics=["accuracy"])
    lm.fit(["An instruction and its response."] * 8, batch_size=4)
    lm.generate("An instruction", max_length=64)
    ```
    """
    return _task(
        keras_hub.models.CausalLM,
        keras_hub.models.CausalLMPreprocessor,
        preset,
        sequence_length,
        dtype,
        "sequence_length",
    )


def seq2seq_lm(preset, sequence_length=None, dtype=None):
    """Builds a pretrained keras-hub sequence-to-sequence LM (an
    encoder-decoder generator, such as BART).

    Args:
        preset: a keras-hub preset name or handle (`"bart_base_en"`), or a
            local folder: a keras-hub preset or a Hugging Face BART
            checkpoint (`config.json` and safetensors weights).
        sequence_length: the length the preprocessor pads or truncates both
            the source and the target to, at most the model's positions
            (1,024 for BART). Defaults to the preset's own.
        dtype: the dtype or dtype policy of the weights and computation.
            Defaults to the global policy.

    Returns:
        A `keras_hub.models.Seq2SeqLM` (for example a `BartSeq2SeqLM`).

    Raises:
        ValueError: as `causal_lm`.

    Example:

    ```python
    mt = kfinetune.presets.seq2seq_lm("bart_base_en", sequence_length=128)
    mt = kfinetune.peft.apply(mt, kfinetune.peft.PrefixConfig(length=16))
    mt.compile(optimizer=keras.optimizers.AdamW(1e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(
                   from_logits=True),
               weighted_metrics=["accuracy"])
    mt.fit({"encoder_text": ["a source"], "decoder_text": ["a target"]})
    mt.generate("a source", max_length=64)
    ```
    """
    return _task(
        keras_hub.models.Seq2SeqLM,
        keras_hub.models.Seq2SeqLMPreprocessor,
        preset,
        sequence_length,
        dtype,
        "encoder_sequence_length",
        "decoder_sequence_length",
    )


def _task(task_base, preprocessor_base, preset, sequence_length, dtype, *keys):
    if not isinstance(preset, (str, pathlib.Path)):
        raise ValueError(
            "`preset` must be a keras-hub preset name or handle, or the path "
            f"of a local preset folder. Received: preset={preset!r}"
        )
    if sequence_length is not None:
        checks.positive_integer("sequence_length", sequence_length)
    preset = str(preset)
    folder = pathlib.Path(preset)
    local = folder.is_dir()
    if local:
        _check_activation(folder)
    has_tokenizer = not local or any(
        (folder / name).exists() for name in _TOKENIZER_FILES
    )
    if sequence_length is not None and not has_tokenizer:
        raise ValueError(
            f"{preset} has no tokenizer ({', '.join(_TOKENIZER_FILES)}), so "
            "the model takes token ids and has no preprocessor to pad or "
            "truncate texts to `sequence_length`. Pass sequence_length=None "
            "and pad the token ids yourself, or add the tokenizer's files. "
            f"Received: sequence_length={sequence_length}"
        )
    backbone = keras_hub.models.Backbone.from_preset(preset, dtype=dtype)
    limit = getattr(backbone, "max_sequence_length", None)
    if sequence_length is not None and limit and sequence_length > limit:
        raise ValueError(
            f"`sequence_length` must be at most {limit}, the number of "
            f"positions of {type(backbone).__name__}. "
            f"Received: sequence_length={sequence_length}"
        )
    task_class = _task_class(task_base, backbone)
    preprocessor = None
    if has_tokenizer:
        lengths = {}
        if sequence_length is not None:
            lengths = {key: sequence_length for key in keys}
        preprocessor = preprocessor_base.from_preset(preset, **lengths)
    return task_class(backbone, preprocessor=preprocessor)


def _task_class(task_base, backbone):
    """The keras-hub task class of `task_base` built on `backbone`'s class."""
    # keras-hub's `Seq2SeqLM` subclasses `CausalLM`: an encoder-decoder is
    # not a causal LM.
    excluded = (
        keras_hub.models.Seq2SeqLM
        if task_base is keras_hub.models.CausalLM
        else ()
    )
    found = [
        value
        for value in vars(keras_hub.models).values()
        if isinstance(value, type)
        and issubclass(value, task_base)
        and not (excluded and issubclass(value, excluded))
        and value.backbone_cls is type(backbone)
    ]
    if not found:
        raise ValueError(
            f"keras-hub has no {task_base.__name__} for "
            f"{type(backbone).__name__}, so the preset is not a "
            f"{task_base.__name__}. Received: "
            f"backbone={type(backbone).__name__}"
        )
    return found[0]


def _check_activation(folder):
    """Refuses a Hugging Face folder whose feed-forward activation is not
    the one keras-hub builds its architecture with."""
    path = folder / "config.json"
    if not path.exists():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in _ACTIVATIONS:
        return
    key, default, computed = _ACTIVATIONS[model_type]
    activation = config.get(key) or default
    if activation not in computed:
        raise ValueError(
            f"{path} names the feed-forward activation {key}={activation!r}, "
            f"but keras-hub builds {model_type} models with "
            f"{computed[0]!r}: the loaded model would compute other outputs "
            f"than the checkpoint's. Received: {key}={activation!r}"
        )
