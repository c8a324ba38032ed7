"""`greedy_decoding`: what greedy `generate()` must yield, without a cache."""

import keras
import numpy as np


def greedy_decoding(model, x):
    """Greedy decoding by full forward passes, one new token at a time.

    keras-hub's `generate()` runs a key/value cache; anything that changes
    the attention (prefixes, prompts) must give the same tokens as this
    reference, which never uses the cache: each step runs the model over
    the whole sequence and picks the most likely next token.

    Args:
        model: a causal LM that takes `{"token_ids", "padding_mask"}`, or
            a sequence-to-sequence LM that takes `encoder_token_ids`,
            `encoder_padding_mask`, `decoder_token_ids` and
            `decoder_padding_mask`.
        x: a dict of NumPy arrays: those inputs, where the (decoder)
            padding mask marks the prompt of each row (positions after it
            are generated).

    Returns:
        The (decoder) token ids, with every position after a row's prompt
        filled.

    Example:

    ```python
    model.compile(sampler="greedy")
    generated = model.generate(x, stop_token_ids=None)["token_ids"]
    np.testing.assert_array_equal(
        generated, kfinetune.testing.greedy_decoding(model, x))
    ```
    """
    prefix = "decoder_" if "decoder_token_ids" in x else ""
    tokens = x[f"{prefix}token_ids"].copy()
    mask = x[f"{prefix}padding_mask"].astype(bool)
    inputs = dict(x)
    inputs[f"{prefix}padding_mask"] = np.ones_like(mask, "int32")
    for index in range(int(mask.sum(1).min()), tokens.shape[1]):
        inputs[f"{prefix}token_ids"] = tokens
        logits = keras.ops.convert_to_numpy(model(inputs))
        chosen = logits[:, index - 1].argmax(-1)
        tokens[:, index] = np.where(mask[:, index], tokens[:, index], chosen)
    return tokens
