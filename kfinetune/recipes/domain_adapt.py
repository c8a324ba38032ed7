"""`domain_adapt`: continued masked-LM pretraining on unlabelled domain text."""

import math
import os
import warnings

import keras
import keras_hub
import tensorflow as tf

from kfinetune import checks
from kfinetune.compiling import compile_and_build
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import refuse_pairs

_SHUFFLE_BUFFER = 10_000


def _backbone_of(model):
    if isinstance(model, keras_hub.models.BertBackbone):
        return model
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        # A `kfinetune.peft` model applied directly to a backbone.
        backbone = getattr(model, "base", None)
    if not isinstance(backbone, keras_hub.models.BertBackbone):
        raise ValueError(
            "`model_or_backbone` must be a keras-hub `BertBackbone` or a "
            "model with one as its `backbone` (a BERT-family encoder such "
            "as the bundled MiniLM). Received: "
            f"model_or_backbone={model!r} with backbone={backbone!r}"
        )
    return backbone


def _texts_dataset(texts):
    if isinstance(texts, LabelledTexts):
        refuse_pairs(
            texts,
            "texts",
            "masked language modelling",
            hint="Pass `texts.texts.ravel()` to adapt to both sides of "
            "the pairs as single texts.",
        )
        texts = texts.texts
    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if (
            not isinstance(spec, tf.TensorSpec)
            or spec.dtype != tf.string
            or spec.shape.rank not in (0, 1)
        ):
            raise ValueError(
                "`texts` must be a tf.data.Dataset of strings (texts only, "
                "not `(text, label)` pairs), unbatched or batched. "
                f"Received: texts with element_spec={spec!r}"
            )
        if int(texts.cardinality()) == 0:
            raise ValueError(
                "`texts` must hold at least one text. Received: texts="
                f"{texts!r} (an empty dataset)"
            )
        return texts.unbatch() if spec.shape.rank == 1 else texts
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__len__"):
        raise ValueError(
            "`texts` must be a list or 1-D array of strings, a tf.data."
            "Dataset of strings or a `kfinetune.data.LabelledTexts`. "
            f"Received: texts={texts!r}"
        )
    texts = list(texts)
    if not texts:
        raise ValueError(
            f"`texts` must hold at least one text. Received: texts={texts!r}"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"Every text must be a string; texts[{index}] is a "
                f"{type(text).__name__}. Received: texts[{index}]={text!r}"
            )
    return tf.data.Dataset.from_tensor_slices(
        tf.constant(texts, dtype=tf.string)
    )


def _tokenizer_of(model, tokenizer):
    if tokenizer is None:
        preprocessor = getattr(model, "preprocessor", None)
        tokenizer = getattr(preprocessor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(
                "`tokenizer` is needed when the model has no preprocessor "
                "(a backbone, or a classifier built with "
                "`preprocessor=None`): pass the `BertTokenizer` of the "
                "backbone's checkpoint. Received: tokenizer=None"
            )
    elif not isinstance(tokenizer, keras_hub.models.BertTokenizer):
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if not isinstance(tokenizer, keras_hub.models.BertTokenizer):
        raise ValueError(
            "`tokenizer` must be a `keras_hub.models.BertTokenizer` or a "
            f"preprocessor holding one. Received: tokenizer={tokenizer!r}"
        )
    return tokenizer


def domain_adapt(
    model_or_backbone,
    texts,
    epochs=1,
    batch_size=32,
    learning_rate=5e-5,
    mask_rate=0.15,
    sequence_length=None,
    tokenizer=None,
    checkpoint_dir=None,
    checkpoint_every="epoch",
    callbacks=(),
    jit_compile="auto",
    verbose="auto",
    seed=0,
):
    """Adapts a BERT encoder to a domain by continued masked-LM pretraining.

    Domain-adaptive pretraining (Gururangan et al., 2020): before
    fine-tuning on few labels, train the encoder on unlabelled text of the
    task's domain with the masked-language-model objective it was
    pretrained with. A keras-hub `BertMaskedLM` is built around the very
    backbone you pass (the same layers and variables, nothing is copied),
    trained with `fit`, and the adapted backbone is handed back: a
    classifier built on it sees the new weights at once.

    Masking is keras-hub's `MaskedLMMaskGenerator` inside
    `BertMaskedLMPreprocessor`: `mask_rate` of the non-special tokens are
    selected (15 % by default); of those 80 % become `[MASK]`, 10 % a
    random token and 10 % stay, as in BERT. The loss is cross-entropy on
    the selected tokens only.

    The MLM head is new and starts untrained: keras-hub's `BertMaskedLM`
    adds a dense layer (GELU, truncated-normal initialiser with standard
    deviation 0.02) and a layer normalisation (ones and zeros), and
    projects back onto the vocabulary with the backbone's own token
    embedding transposed (tied weights) plus a zero bias. keras-hub's
    Hugging Face converter loads no MLM head, and the bundled MiniLM
    (a sentence-transformers checkpoint) ships none, so the head always
    starts from that initialisation; the first steps mostly train it.
    The head is dropped when the function returns.

    Only trainable variables move. With a `kfinetune.peft` model (e.g.
    LoRA applied), the frozen base weights stay unchanged and the adapter
    weights and the MLM head train.

    Keras's global random generators are seeded with
    `keras.utils.set_random_seed(seed)`, so the head's initialisation, the
    text order and the masking repeat from run to run.

    Args:
        model_or_backbone: a keras-hub `BertBackbone`, or a model with one
            as its `backbone` (a `BertTextClassifier`,
            `kfinetune.presets.text_classifier(...)`, a `kfinetune.peft`
            model).
        texts: the unlabelled domain texts: a list or 1-D array of strings,
            a `tf.data.Dataset` of strings (unbatched or batched), or a
            `kfinetune.data.LabelledTexts` (its labels are ignored).
        epochs: passes over `texts`. Defaults to `1`.
        batch_size: texts per step. Defaults to `32`.
        learning_rate: AdamW's learning rate. Defaults to `5e-5`.
        mask_rate: the fraction of tokens selected for prediction, in
            `(0, 1)`. Defaults to `0.15`.
        sequence_length: token length texts are padded or truncated to.
            Defaults to the model's preprocessor's, else `128`, at most
            the backbone's `max_sequence_length`.
        tokenizer: a `keras_hub.models.BertTokenizer` matching the backbone
            (or a preprocessor holding one). Defaults to the model's
            preprocessor's tokenizer.
        checkpoint_dir: when given, a run interrupted and started again
            with the same arguments resumes (`keras.callbacks.
            BackupAndRestore` under `checkpoint_dir/backup`, removed when
            the run completes), and the MLM model's weights are saved to
            `checkpoint_dir/mlm.weights.h5` after every epoch. Keras
            resumes from the last backup's weights at the start of its
            epoch. Defaults to `None`.
        checkpoint_every: `"epoch"` or a number of steps between backups.
            Defaults to `"epoch"`.
        callbacks: more callbacks for `fit`.
        jit_compile: passed to `compile`. Defaults to `"auto"`.
        verbose: passed to `fit` (`1`: Keras's progress bar). Defaults to
            `"auto"`.
        seed: the random seed. Defaults to `0`.

    Returns:
        `model_or_backbone`, its backbone adapted in place.

    Raises:
        ValueError: before any training, when `texts` is empty or holds a
            non-string or sentence pairs, the model has no BERT backbone,
            the tokenizer is
            missing or does not match it, or an argument is out of range.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    unlabelled = ["just landed in london", "my flight was delayed again"]
    kfinetune.recipes.domain_adapt(model, unlabelled, epochs=1)
    ```
    """
    backbone = _backbone_of(model_or_backbone)
    checks.positive_integer("epochs", epochs)
    checks.positive_integer("batch_size", batch_size)
    checks.positive_number("learning_rate", learning_rate)
    checks.in_range("mask_rate", mask_rate, 0, 1, low_closed=False)
    if sequence_length is None:
        preprocessor = getattr(model_or_backbone, "preprocessor", None)
        sequence_length = min(
            getattr(preprocessor, "sequence_length", None) or 128,
            backbone.max_sequence_length,
        )
    checks.in_range(
        "sequence_length",
        sequence_length,
        3,
        backbone.max_sequence_length,
        high_closed=True,
        integer=True,
    )
    if checkpoint_every != "epoch":
        checks.positive_integer("checkpoint_every", checkpoint_every)
    tokenizer = _tokenizer_of(model_or_backbone, tokenizer)
    if tokenizer.vocabulary_size() != backbone.vocabulary_size:
        raise ValueError(
            "`tokenizer` must have the backbone's vocabulary "
            f"({backbone.vocabulary_size} tokens). Received: tokenizer with "
            f"vocabulary_size={tokenizer.vocabulary_size()}"
        )
    dataset = _texts_dataset(texts)

    keras.utils.set_random_seed(seed)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer,
        sequence_length=sequence_length,
        mask_selection_rate=mask_rate,
        # Room above the mean number selected, so that few selections are
        # cut (keras-hub's presets allow 96 of 512, for a rate of 0.15).
        mask_selection_length=min(
            sequence_length, math.ceil(1.25 * mask_rate * sequence_length)
        ),
    )
    dataset = (
        dataset.shuffle(_SHUFFLE_BUFFER, seed=seed)
        .batch(batch_size)
        .map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    masked_lm = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    # Builds the optimizer and keras-hub's default metrics before `fit`,
    # which then traces its train function once instead of twice.
    compile_and_build(
        masked_lm,
        data=dataset,
        optimizer=keras.optimizers.AdamW(learning_rate),
        jit_compile=jit_compile,
    )
    callbacks = list(callbacks)
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        callbacks += [
            keras.callbacks.BackupAndRestore(
                os.path.join(checkpoint_dir, "backup"),
                save_freq=checkpoint_every,
            ),
            keras.callbacks.ModelCheckpoint(
                os.path.join(checkpoint_dir, "mlm.weights.h5"),
                save_weights_only=True,
            ),
        ]
    with warnings.catch_warnings():
        # The pooler is not on the MLM path, so it has no gradient by
        # design; the classifier's head trains it later.
        warnings.filterwarnings(
            "ignore",
            message=r"Gradients do not exist for variables "
            r"\['pooled_dense/kernel', 'pooled_dense/bias'\]",
        )
        masked_lm.fit(
            dataset,
            epochs=epochs,
            callbacks=callbacks,
            # The dataset shuffles itself.
            shuffle=False,
            verbose=verbose,
        )
    return model_or_backbone
