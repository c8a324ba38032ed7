"""The keras-hub encoder families kfinetune's task models are built on,
and what differs between them.

kfinetune's task models (`kfinetune.presets.token_classifier`,
`question_answerer`, `kfinetune.multitask.build`, ...) put a head on a
keras-hub encoder backbone. The families differ in ways a head and its
data must follow:

| family      | keras-hub backbone   | `segment_ids` | pieces         |
|-------------|----------------------|---------------|----------------|
| BERT        | `BertBackbone`       | yes           | WordPiece      |
| ELECTRA     | `ElectraBackbone`    | yes           | WordPiece      |
| DistilBERT  | `DistilBertBackbone` | no            | WordPiece      |
| ALBERT      | `AlbertBackbone`     | yes           | SentencePiece  |
| DeBERTa-v3  | `DebertaV3Backbone`  | no            | SentencePiece  |
| XLM-RoBERTa | `XLMRobertaBackbone` | no            | SentencePiece  |
| RoBERTa     | `RobertaBackbone`    | no            | byte-level BPE |

- inputs: every backbone takes `token_ids` and `padding_mask`; those
  marked above also take `segment_ids`.
- outputs: BERT, ELECTRA and ALBERT return a dict with `sequence_output`
  and a pooler's `pooled_output`; the others return the sequence output
  alone. `outputs(backbone, inputs)` gives both for every family, the
  first token's hidden state standing for the pooler where there is none
  (as keras-hub's classifiers of those families read).
- text classifiers: `EncoderFamily.text_classifier`, keras-hub's class of
  the family, or kfinetune's `ElectraTextClassifier` for ELECTRA.
- pairs: RoBERTa and XLM-RoBERTa put two end tokens between the
  segments of a pair (`<s> a </s></s> b </s>`), the others one
  (`[CLS] a [SEP] b [SEP]`), as the family's keras-hub preprocessor packs
  them.
- pieces: how a word becomes pieces (see `kfinetune.data.align_tags`
  and `kfinetune.qa.prepare_features`): WordPiece marks continuation
  pieces (`##ing`); SentencePiece marks a word's first piece (`▁word`);
  byte-level BPE reads the space before a word as part of it (`Ġword`).

Example:

```python
backbone = kfinetune.presets.backbone()
family = kfinetune.encoders.family_of(backbone)
family.name  # 'BERT'
```
"""

import dataclasses

import keras_hub

from kfinetune.electra_classifier import ElectraTextClassifier

WORDPIECE = "wordpiece"
SENTENCEPIECE = "sentencepiece"
BYTE_BPE = "byte_bpe"


@dataclasses.dataclass(frozen=True)
class EncoderFamily:
    """What kfinetune needs to know about one keras-hub encoder family.

    Attributes:
        name: the family, e.g. `"RoBERTa"`.
        backbone: the keras-hub backbone class.
        segment_ids: whether the backbone takes `segment_ids`.
        pooled_output: whether the backbone returns a dict with a pooler's
            `pooled_output` (and `sequence_output`), rather than the
            sequence output alone.
        tokenizer: how words become pieces: `"wordpiece"`,
            `"sentencepiece"` or `"byte_bpe"`.
        pair_separator: the end tokens between the segments of a pair.
        hf_model_type: the `model_type` of the family's Hugging Face
            checkpoints (`config.json`).
        text_classifier: the family's `keras_hub.models.TextClassifier`
            subclass; for ELECTRA, which keras-hub gives none,
            `kfinetune.presets.ElectraTextClassifier`.
    """

    name: str
    backbone: type
    segment_ids: bool
    pooled_output: bool
    tokenizer: str
    pair_separator: int
    hf_model_type: str
    text_classifier: type


models = keras_hub.models
BERT = EncoderFamily(
    "BERT",
    models.BertBackbone,
    True,
    True,
    WORDPIECE,
    1,
    "bert",
    models.BertTextClassifier,
)
ELECTRA = EncoderFamily(
    "ELECTRA",
    models.ElectraBackbone,
    True,
    True,
    WORDPIECE,
    1,
    "electra",
    ElectraTextClassifier,
)
DISTILBERT = EncoderFamily(
    "DistilBERT",
    models.DistilBertBackbone,
    False,
    False,
    WORDPIECE,
    1,
    "distilbert",
    models.DistilBertTextClassifier,
)
ALBERT = EncoderFamily(
    "ALBERT",
    models.AlbertBackbone,
    True,
    True,
    SENTENCEPIECE,
    1,
    "albert",
    models.AlbertTextClassifier,
)
DEBERTA_V3 = EncoderFamily(
    "DeBERTa-v3",
    models.DebertaV3Backbone,
    False,
    False,
    SENTENCEPIECE,
    1,
    "deberta-v2",
    models.DebertaV3TextClassifier,
)
# Before RoBERTa: keras-hub's `XLMRobertaBackbone` subclasses
# `RobertaBackbone`.
XLM_ROBERTA = EncoderFamily(
    "XLM-RoBERTa",
    models.XLMRobertaBackbone,
    False,
    False,
    SENTENCEPIECE,
    2,
    "xlm-roberta",
    models.XLMRobertaTextClassifier,
)
ROBERTA = EncoderFamily(
    "RoBERTa",
    models.RobertaBackbone,
    False,
    False,
    BYTE_BPE,
    2,
    "roberta",
    models.RobertaTextClassifier,
)
del models

FAMILIES = (BERT, ELECTRA, DISTILBERT, ALBERT, DEBERTA_V3, XLM_ROBERTA, ROBERTA)


def family_of(backbone):
    """The `EncoderFamily` of a keras-hub encoder backbone.

    Args:
        backbone: a keras-hub backbone (subclasses count: kfinetune's
            `HFBertBackbone` is a BERT).

    Returns:
        An `EncoderFamily`.

    Raises:
        ValueError: `backbone` is not of a supported family; the message
            names its class and the supported families.

    Example:

    >>> backbone = kfinetune.testing.small_bert_backbone()
    >>> kfinetune.encoders.family_of(backbone).name
    'BERT'
    """
    for family in FAMILIES:
        if isinstance(backbone, family.backbone):
            return family
    supported = ", ".join(f"{f.name} ({f.backbone.__name__})" for f in FAMILIES)
    raise ValueError(
        "kfinetune's task models need a keras-hub encoder backbone of a "
        f"supported family: {supported}. Received: a "
        f"{type(backbone).__name__}"
    )


# Each family's keras-hub tokenizer: the family of data tokenized apart
# from a backbone (`kfinetune.data.align_tags`,
# `kfinetune.qa.prepare_features`).
_TOKENIZERS = {
    BERT: "BertTokenizer",
    ELECTRA: "ElectraTokenizer",
    DISTILBERT: "DistilBertTokenizer",
    ALBERT: "AlbertTokenizer",
    DEBERTA_V3: "DebertaV3Tokenizer",
    XLM_ROBERTA: "XLMRobertaTokenizer",
    ROBERTA: "RobertaTokenizer",
}


def family_of_tokenizer(tokenizer):
    """The `EncoderFamily` of a keras-hub encoder tokenizer.

    Args:
        tokenizer: a keras-hub tokenizer of a supported family (a
            `BertTokenizer`, `RobertaTokenizer`, `AlbertTokenizer`, ...;
            subclasses count), or a preprocessor holding one.

    Returns:
        An `EncoderFamily`.

    Raises:
        ValueError: `tokenizer` is not of a supported family; the message
            names the supported tokenizers.

    Example:

    >>> tokenizer = kfinetune.testing.small_tokenizer("roberta")
    >>> kfinetune.encoders.family_of_tokenizer(tokenizer).name
    'RoBERTa'
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    # The most derived class decides: a subclass of one family's
    # tokenizer may be registered as another's.
    for cls in type(tokenizer).__mro__:
        for family, name in _TOKENIZERS.items():
            if cls is getattr(keras_hub.models, name):
                return family
    supported = ", ".join(
        f"{family.name} ({name})" for family, name in _TOKENIZERS.items()
    )
    raise ValueError(
        "`tokenizer` must be the keras-hub tokenizer of a supported encoder "
        f"family: {supported}, or a preprocessor holding one. Received: "
        f"tokenizer={tokenizer!r}"
    )


def input_names(backbone):
    """The names of `backbone`'s inputs, in kfinetune's order:
    `token_ids`, then `segment_ids` when the family takes them, then
    `padding_mask`."""
    family = family_of(backbone)
    if family.segment_ids:
        return ("token_ids", "segment_ids", "padding_mask")
    return ("token_ids", "padding_mask")


def backbone_features(backbone, inputs):
    """The entries of `inputs` (a dict of tensors, possibly with more
    entries, e.g. `segment_ids` for a family without them, or a CRF's
    `word_mask`) that `backbone` takes."""
    return {name: inputs[name] for name in input_names(backbone)}


def outputs(backbone, inputs):
    """Runs `backbone` once on `inputs` (see `backbone_features`) and
    returns its sequence output and a sentence vector, for every family.

    `pooled_output` is the pooler's output when the family has a pooler
    (BERT, ELECTRA, ALBERT: a dense layer with tanh over the first
    token). The other families have no pooler, and keras-hub's own
    classifiers for them (`RobertaTextClassifier`,
    `XLMRobertaTextClassifier`, `DistilBertTextClassifier`,
    `DebertaV3TextClassifier`) read the first token's hidden state
    (`<s>` or `[CLS]`) instead; so does this, so that a sentence-level
    head reads the same vector as keras-hub's classifier of the family.

    Args:
        backbone: a keras-hub backbone of a supported family.
        inputs: a dict of tensors with at least the backbone's inputs.

    Returns:
        A dict of `sequence_output` `(batch, sequence, hidden)` and
        `pooled_output` `(batch, hidden)`.

    Raises:
        ValueError: `backbone` is not of a supported family.

    Example:

    ```python
    backbone = kfinetune.testing.small_backbone("roberta")
    features = kfinetune.encoders.outputs(backbone, backbone.input)
    logits = keras.layers.Dense(2)(features["pooled_output"])
    ```
    """
    family = family_of(backbone)
    result = backbone(backbone_features(backbone, inputs))
    if family.pooled_output:
        return {
            "sequence_output": result["sequence_output"],
            "pooled_output": result["pooled_output"],
        }
    return {"sequence_output": result, "pooled_output": result[:, 0, :]}


def sequence_output(backbone, inputs):
    """Runs `backbone` on `inputs` (see `backbone_features`) and returns
    its sequence output `(batch, sequence, hidden)`."""
    return outputs(backbone, inputs)["sequence_output"]
