"""Small randomly initialised keras-hub BERT models for tests.

They have the architecture of the bundled MiniLM (a keras-hub `BertBackbone`
with the same layer names and paths) at a size that builds and trains in
well under a second, for tests where the weights don't matter.
"""

import keras
import keras_hub
import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WORDS = (
    "the a an is was good bad great awful movie film day night love hate "
    "happy sad not very really this that it i you we they and or but so "
    "fun boring loved hated best worst ever never always tweet today"
).split()
VOCABULARY = SPECIAL_TOKENS + tuple(WORDS)


def small_bert_backbone(
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
    dropout=0.0,
    weight_scale=0.2,
    seed=0,
    dtype=None,
):
    """Builds a small randomly initialised `keras_hub.models.BertBackbone`.

    The vocabulary is `VOCABULARY` (special tokens plus a few dozen words),
    so it pairs with `small_bert_preprocessor`.

    Args:
        num_layers: transformer layers. Defaults to `2`.
        num_heads: attention heads. Defaults to `4`.
        hidden_dim: hidden size. Defaults to `32`.
        intermediate_dim: feed-forward size. Defaults to `64`.
        max_sequence_length: position embeddings. Defaults to `64`.
        dropout: dropout rate; `0.0` keeps training deterministic.
            Defaults to `0.0`.
        seed: passed to `keras.utils.set_random_seed` before building, so the
            same seed gives the same weights (this also reseeds the global
            random generators). Defaults to `0`.
        weight_scale: standard deviation every kernel and embedding table is
            redrawn with. keras-hub's BERT initialiser uses 0.02, which makes
            a random model's outputs almost independent of its inputs, so
            tests comparing outputs would prove little. Defaults to `0.2`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.

    Returns:
        A built `keras_hub.models.BertBackbone`.

    Example:

    >>> backbone = kfinetune.testing.small_bert_backbone()
    >>> backbone.get_layer("transformer_layer_1").name
    'transformer_layer_1'
    """
    return _random_backbone(
        keras_hub.models.BertBackbone,
        weight_scale,
        seed,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        max_sequence_length=max_sequence_length,
        dtype=dtype,
    )


def _random_backbone(
    backbone_class, weight_scale, seed, vocabulary_size=None, **kwargs
):
    keras.utils.set_random_seed(seed)
    backbone = backbone_class(
        vocabulary_size=vocabulary_size or len(VOCABULARY), **kwargs
    )
    _rescale(backbone, weight_scale, seed)
    return backbone


def _rescale(model, scale, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if variable.path.endswith(("kernel", "embeddings")):
            values = rng.normal(0.0, scale, variable.shape)
            variable.assign(values.astype(variable.dtype))


def small_bert_preprocessor(sequence_length=16):
    """Builds a `BertTextClassifierPreprocessor` over `VOCABULARY`.

    Args:
        sequence_length: padded input length. Defaults to `16`.

    Returns:
        A `keras_hub.models.BertTextClassifierPreprocessor`.
    """
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=list(VOCABULARY), lowercase=True
    )
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )


def save_small_bert_preset(folder, max_sequence_length=32, seed=0):
    """Saves a small random BERT and its tokenizer as a keras-hub preset
    folder, which `kfinetune.presets` and the command line's `--preset`
    load like any preset.

    Args:
        folder: the folder to write (created when missing).
        max_sequence_length: the backbone's positions. Defaults to `32`.
        seed: the seed of the random weights. Defaults to `0`.

    Returns:
        The folder, as a string.

    Example:

    ```python
    preset = kfinetune.testing.save_small_bert_preset(tmp_path / "preset")
    model = kfinetune.presets.text_classifier(num_classes=2, preset=preset)
    ```
    """
    folder = str(folder)
    backbone = small_bert_backbone(
        max_sequence_length=max_sequence_length, seed=seed
    )
    backbone.save_to_preset(folder)
    small_bert_preprocessor().tokenizer.save_to_preset(folder)
    return folder


def small_bert_classifier(
    num_classes=2,
    sequence_length=None,
    dropout=0.0,
    weight_scale=0.2,
    seed=0,
    dtype=None,
    **backbone_kwargs,
):
    """Builds a small randomly initialised `BertTextClassifier`.

    Args:
        num_classes: output classes. Defaults to `2`.
        sequence_length: when given, a `small_bert_preprocessor` of this
            length is attached and the model takes raw strings; when `None`
            the model takes the preprocessed dict of `small_bert_inputs`.
            Defaults to `None`.
        dropout: dropout of the backbone and of the classifier head.
            Defaults to `0.0`.
        weight_scale: see `small_bert_backbone`. Defaults to `0.2`.
        seed: see `small_bert_backbone`. Defaults to `0`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.
        **backbone_kwargs: passed to `small_bert_backbone`.

    Returns:
        A `keras_hub.models.BertTextClassifier`.

    Example:

    ```python
    model = kfinetune.testing.small_bert_classifier()
    x = kfinetune.testing.small_bert_inputs(batch_size=4)
    model.predict(x).shape  # (4, 2)
    ```
    """
    backbone = small_bert_backbone(
        dropout=dropout,
        weight_scale=weight_scale,
        seed=seed,
        dtype=dtype,
        **backbone_kwargs,
    )
    preprocessor = None
    if sequence_length is not None:
        preprocessor = small_bert_preprocessor(sequence_length)
    model = keras_hub.models.BertTextClassifier(
        backbone,
        num_classes=num_classes,
        preprocessor=preprocessor,
        dropout=dropout,
        dtype=dtype,
    )
    _rescale(model.get_layer("logits"), weight_scale, seed + 1)
    return model


def small_bert_inputs(batch_size=4, sequence_length=16, seed=0):
    """Random preprocessed BERT inputs with padding, as NumPy arrays.

    Every row starts with `[CLS]`, holds a random number of word tokens, ends
    with `[SEP]` and is padded with `[PAD]` (id 0) to `sequence_length`;
    `padding_mask` marks the real tokens. At least one row is padded.

    Args:
        batch_size: number of rows. Defaults to `4`.
        sequence_length: row length. Defaults to `16`.
        seed: NumPy seed. Defaults to `0`.

    Returns:
        A dict with int32 `token_ids`, `segment_ids` and `padding_mask`, each
        of shape `(batch_size, sequence_length)` (int32 masks, as the
        backbone's inputs declare: `MirroredStrategy` cannot split bool
        tensors).
    """
    rng = np.random.default_rng(seed)
    cls, sep = VOCABULARY.index("[CLS]"), VOCABULARY.index("[SEP]")
    token_ids = np.zeros((batch_size, sequence_length), "int32")
    padding_mask = np.zeros((batch_size, sequence_length), "int32")
    for row in range(batch_size):
        # Row 0 is always padded so that masking is exercised.
        high = sequence_length - 2 if row else sequence_length // 2
        length = int(rng.integers(1, max(high, 1) + 1))
        words = rng.integers(len(SPECIAL_TOKENS), len(VOCABULARY), length)
        token_ids[row, : length + 2] = [cls, *words, sep]
        padding_mask[row, : length + 2] = 1
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros_like(token_ids),
        "padding_mask": padding_mask,
    }


def small_gpt2_causal_lm(
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
    weight_scale=0.2,
    seed=0,
    dtype=None,
):
    """Builds a small randomly initialised keras-hub `GPT2CausalLM`.

    A decoder-only model of the GPT-2 architecture over `VOCABULARY`,
    without a preprocessor: it takes the dict of `small_gpt2_inputs`, for
    tests of methods that must also work in causal decoders.

    Args:
        num_layers: transformer layers. Defaults to `2`.
        num_heads: attention heads. Defaults to `4`.
        hidden_dim: hidden size. Defaults to `32`.
        intermediate_dim: feed-forward size. Defaults to `64`.
        max_sequence_length: position embeddings. Defaults to `64`.
        weight_scale: see `small_bert_backbone`. Defaults to `0.2`.
        seed: see `small_bert_backbone`. Defaults to `0`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.

    Returns:
        A `keras_hub.models.GPT2CausalLM` with `preprocessor=None`.

    Example:

    ```python
    model = kfinetune.testing.small_gpt2_causal_lm()
    x = kfinetune.testing.small_gpt2_inputs(batch_size=4)
    model.predict(x).shape  # (4, 16, len(kfinetune.testing.VOCABULARY))
    ```
    """
    backbone = _random_backbone(
        keras_hub.models.GPT2Backbone,
        weight_scale,
        seed,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=0.0,
        max_sequence_length=max_sequence_length,
        dtype=dtype,
    )
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def small_gpt2_inputs(batch_size=4, sequence_length=16, seed=0):
    """Random GPT-2 inputs with right padding, as NumPy arrays.

    Args:
        batch_size: number of rows. Defaults to `4`.
        sequence_length: row length. Defaults to `16`.
        seed: NumPy seed. Defaults to `0`.

    Returns:
        A dict with int32 `token_ids` and `padding_mask`; row 0 is padded.
    """
    x = small_bert_inputs(batch_size, sequence_length, seed)
    return {"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]}


# The decoder-only families `small_causal_lm` builds: each entry is the
# backbone class, the task class and the architecture's own arguments
# (grouped-query attention: 4 query heads share 2 key/value heads).
_CAUSAL_LM_FAMILIES = {
    "gpt2": None,
    # Hugging Face `llama` checkpoints load as keras-hub's Llama 3 classes.
    "llama": (
        "Llama3Backbone",
        "Llama3CausalLM",
        {"num_query_heads": 4, "num_key_value_heads": 2},
    ),
    "gemma": (
        "GemmaBackbone",
        "GemmaCausalLM",
        {"num_query_heads": 4, "num_key_value_heads": 2, "head_dim": 8},
    ),
    "mistral": (
        "MistralBackbone",
        "MistralCausalLM",
        {"num_query_heads": 4, "num_key_value_heads": 2},
    ),
    "qwen": (
        "QwenBackbone",
        "QwenCausalLM",
        {"num_query_heads": 4, "num_key_value_heads": 2},
    ),
}
CAUSAL_LM_FAMILIES = tuple(_CAUSAL_LM_FAMILIES)


def small_causal_lm(
    family="llama",
    num_layers=2,
    hidden_dim=32,
    intermediate_dim=64,
    weight_scale=0.2,
    seed=0,
    dtype=None,
):
    """Builds a small randomly initialised keras-hub causal LM of a family.

    Args:
        family: one of `CAUSAL_LM_FAMILIES`: `"gpt2"`, `"llama"`, `"gemma"`,
            `"mistral"` or `"qwen"`; all but GPT-2 use grouped-query
            attention (4 query heads, 2 key/value heads) and rotary
            position embeddings. Defaults to `"llama"`.
        num_layers: transformer layers. Defaults to `2`.
        hidden_dim: hidden size. Defaults to `32`.
        intermediate_dim: feed-forward size. Defaults to `64`.
        weight_scale: see `small_bert_backbone`. Defaults to `0.2`.
        seed: see `small_bert_backbone`. Defaults to `0`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.

    Returns:
        A keras-hub `CausalLM` with `preprocessor=None` over `VOCABULARY`;
        it takes the dict of `small_gpt2_inputs`.

    Example:

    ```python
    model = kfinetune.testing.small_causal_lm("gemma")
    x = kfinetune.testing.small_gpt2_inputs(batch_size=4)
    model.predict(x).shape  # (4, 16, len(kfinetune.testing.VOCABULARY))
    ```
    """
    if family not in _CAUSAL_LM_FAMILIES:
        raise ValueError(
            f"`family` must be one of {list(_CAUSAL_LM_FAMILIES)}. "
            f"Received: family={family!r}"
        )
    if family == "gpt2":
        return small_gpt2_causal_lm(
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            weight_scale=weight_scale,
            seed=seed,
            dtype=dtype,
        )
    backbone_name, task_name, arguments = _CAUSAL_LM_FAMILIES[family]
    backbone = _random_backbone(
        getattr(keras_hub.models, backbone_name),
        weight_scale,
        seed,
        num_layers=num_layers,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dtype=dtype,
        **arguments,
    )
    return getattr(keras_hub.models, task_name)(backbone, preprocessor=None)


def small_seq2seq_lm(
    architecture="bart",
    num_layers=2,
    num_heads=4,
    hidden_dim=32,
    intermediate_dim=64,
    max_sequence_length=64,
    weight_scale=0.2,
    seed=0,
    dtype=None,
):
    """Builds a small randomly initialised keras-hub sequence-to-sequence LM.

    Args:
        architecture: `"bart"` (a `BartSeq2SeqLM`) or `"t5"` (a
            `T5Seq2SeqLM`: relative position biases, gated feed-forward,
            no position limit). Defaults to `"bart"`.
        num_layers: encoder and decoder layers each. Defaults to `2`.
        num_heads: attention heads. Defaults to `4`.
        hidden_dim: hidden size. Defaults to `32`.
        intermediate_dim: feed-forward size. Defaults to `64`.
        max_sequence_length: BART's position embeddings. Defaults to `64`.
        weight_scale: see `small_bert_backbone`. Defaults to `0.2`.
        seed: see `small_bert_backbone`. Defaults to `0`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.

    Returns:
        A `keras_hub.models.BartSeq2SeqLM` or `T5Seq2SeqLM` with
        `preprocessor=None`; it takes the dict of `small_seq2seq_inputs`.

    Example:

    ```python
    model = kfinetune.testing.small_seq2seq_lm()
    x = kfinetune.testing.small_seq2seq_inputs(batch_size=4)
    model.predict(x).shape  # (4, 16, len(kfinetune.testing.VOCABULARY))
    ```
    """
    classes = {
        "bart": (keras_hub.models.BartBackbone, keras_hub.models.BartSeq2SeqLM),
        "t5": (keras_hub.models.T5Backbone, keras_hub.models.T5Seq2SeqLM),
    }
    if architecture not in classes:
        raise ValueError(
            f"`architecture` must be one of {list(classes)}. "
            f"Received: architecture={architecture!r}"
        )
    backbone_class, task_class = classes[architecture]
    # T5's relative position biases have no length limit.
    limit = {"max_sequence_length": max_sequence_length}
    backbone = _random_backbone(
        backbone_class,
        weight_scale,
        seed,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=0.0,
        dtype=dtype,
        **(limit if architecture == "bart" else {}),
    )
    return task_class(backbone, preprocessor=None)


def small_seq2seq_inputs(batch_size=4, sequence_length=16, seed=0):
    """Random encoder and decoder inputs with right padding.

    Args:
        batch_size: number of rows. Defaults to `4`.
        sequence_length: encoder and decoder length. Defaults to `16`.
        seed: NumPy seed. Defaults to `0`.

    Returns:
        A dict with int32 `encoder_token_ids`, `encoder_padding_mask`,
        `decoder_token_ids` and `decoder_padding_mask`; row 0 of each is
        padded.
    """
    source = small_gpt2_inputs(batch_size, sequence_length, seed)
    target = small_gpt2_inputs(batch_size, sequence_length, seed + 1)
    return {
        "encoder_token_ids": source["token_ids"],
        "encoder_padding_mask": source["padding_mask"],
        "decoder_token_ids": target["token_ids"],
        "decoder_padding_mask": target["padding_mask"],
    }


def byte_symbols():
    """The 256 symbols of GPT-2's byte-level byte-pair encoding, one per
    byte, in byte order (printable bytes stand for themselves, the others
    for characters from U+0100 on; a space is `Ġ`).

    Example:

    >>> symbols = kfinetune.testing.models.byte_symbols()
    >>> len(symbols), symbols[ord("a")], symbols[ord(" ")]
    (256, 'a', 'Ġ')
    """
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def small_byte_tokenizer(architecture="gpt2"):
    """A keras-hub byte-level tokenizer for small test generators: every
    byte a token, one merge (`Ġt`) because keras-hub's byte-pair
    tokenizers need one, and the architecture's special tokens.

    Args:
        architecture: `"gpt2"` (a `GPT2Tokenizer`: `<|endoftext|>` last,
            as in GPT-2's own vocabulary, since keras-hub pads GPT-2 with
            id 0 and `generate` would read padding as ends) or `"bart"` (a
            `BartTokenizer`: `<s>`, `<pad>`, `</s>`, `<mask>` first).
            Defaults to `"gpt2"`.

    Returns:
        A `keras_hub.models.GPT2Tokenizer` or `BartTokenizer` of 258 or 261
        tokens.

    Example:

    >>> tokenizer = kfinetune.testing.models.small_byte_tokenizer()
    >>> tokenizer.vocabulary_size()
    258
    """
    symbols = [*byte_symbols(), "Ġt"]
    if architecture == "gpt2":
        tokens = [*symbols, "<|endoftext|>"]
        vocabulary = {token: i for i, token in enumerate(tokens)}
        return keras_hub.models.GPT2Tokenizer(vocabulary, ["Ġ t"])
    if architecture == "bart":
        tokens = ["<s>", "<pad>", "</s>", "<mask>", *symbols]
        vocabulary = {token: i for i, token in enumerate(tokens)}
        return keras_hub.models.BartTokenizer(vocabulary, ["Ġ t"])
    raise ValueError(
        "`architecture` must be 'gpt2' or 'bart'. "
        f"Received: architecture={architecture!r}"
    )


def save_small_generator_preset(
    folder,
    architecture="gpt2",
    max_sequence_length=64,
    hidden_dim=32,
    num_layers=2,
    seed=0,
):
    """Saves a small random generator with a byte-level tokenizer as a
    keras-hub preset folder, which `kfinetune.presets.causal_lm` /
    `seq2seq_lm` and the command line's `--preset` load like any preset.

    Args:
        folder: the folder to write (created when missing).
        architecture: `"gpt2"` (a `GPT2CausalLM`) or `"bart"` (a
            `BartSeq2SeqLM`). Defaults to `"gpt2"`.
        max_sequence_length: the backbone's positions. Defaults to `64`.
        hidden_dim: hidden size (4 heads, feed-forward twice as wide).
            Defaults to `32`.
        num_layers: transformer layers (BART: in the encoder and in the
            decoder each). Defaults to `2`.
        seed: the seed of the random weights. Defaults to `0`.

    Returns:
        The folder, as a string.

    Example:

    ```python
    preset = kfinetune.testing.save_small_generator_preset(tmp_path / "gpt2")
    model = kfinetune.presets.causal_lm(preset, sequence_length=32)
    model.generate(["the"], max_length=8)
    ```
    """
    tokenizer = small_byte_tokenizer(architecture)
    classes = {
        "gpt2": (
            keras_hub.models.GPT2Backbone,
            keras_hub.models.GPT2CausalLM,
            keras_hub.models.GPT2CausalLMPreprocessor,
        ),
        "bart": (
            keras_hub.models.BartBackbone,
            keras_hub.models.BartSeq2SeqLM,
            keras_hub.models.BartSeq2SeqLMPreprocessor,
        ),
    }
    backbone_class, task_class, preprocessor_class = classes[architecture]
    backbone = _random_backbone(
        backbone_class,
        0.2,
        seed,
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=num_layers,
        num_heads=4,
        hidden_dim=hidden_dim,
        intermediate_dim=2 * hidden_dim,
        dropout=0.0,
        max_sequence_length=max_sequence_length,
    )
    folder = str(folder)
    task_class(backbone, preprocessor_class(tokenizer)).save_to_preset(folder)
    return folder
