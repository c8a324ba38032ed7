"""Small random keras-hub encoders of every family kfinetune supports, with
small tokenizers of the family's kind, for tests where the weights don't
matter (`kfinetune.encoders` lists the families).

The tokenizers are trained or built here from `VOCABULARY`'s words, so
they tokenize like the real ones (with pieces for accents and
punctuation): WordPiece with `##` continuations,
SentencePiece with `▁` word starts, and byte-level BPE with `Ġ` spaces.
"""

import functools
import io

import keras
import keras_hub

from kfinetune import encoders
from kfinetune.testing.models import VOCABULARY
from kfinetune.testing.models import WORDS
from kfinetune.testing.models import _rescale
from kfinetune.testing.models import byte_symbols

# Words with accents, punctuation and capitals, so that the tokenizers
# learn pieces that alignment tests can trip over.
_EXTRA_TEXT = ("Café naïve résumé, don't! «quote» U.S.A. 3.5% e-mail",)


def _wordpiece_vocabulary():
    """`VOCABULARY`, then pieces for `_EXTRA_TEXT`: whole words, pieces
    of words, and every character alone and as a continuation, so that
    accents and punctuation become pieces rather than `[UNK]`. Appended,
    so that `VOCABULARY`'s ids stay."""
    text = _EXTRA_TEXT[0].lower()
    pieces = ["café", "don", "quote", "mail", "na", "##ve", "##sum"]
    for char in sorted(set(text) - {" "}):
        pieces += [char, "##" + char]
    return [
        *VOCABULARY,
        *dict.fromkeys(p for p in pieces if p not in VOCABULARY),
    ]


FAMILY_NAMES = {
    "bert": encoders.BERT,
    "electra": encoders.ELECTRA,
    "distil_bert": encoders.DISTILBERT,
    "albert": encoders.ALBERT,
    "deberta_v3": encoders.DEBERTA_V3,
    "xlm_roberta": encoders.XLM_ROBERTA,
    "roberta": encoders.ROBERTA,
}


def _family(family):
    if family not in FAMILY_NAMES:
        raise ValueError(
            f"`family` must be one of {sorted(FAMILY_NAMES)}. "
            f"Received: family={family!r}"
        )
    return FAMILY_NAMES[family]


@functools.cache
def _sentencepiece_proto(kind):
    import sentencepiece

    special = {
        # ALBERT: `<pad>` 0, `<unk>` 1, then its control tokens.
        "albert": dict(
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            pad_piece="<pad>",
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        ),
        "deberta_v3": dict(
            pad_id=0,
            bos_id=1,
            eos_id=2,
            unk_id=3,
            pad_piece="[PAD]",
            bos_piece="[CLS]",
            eos_piece="[SEP]",
            control_symbols=["[MASK]"],
        ),
        # fairseq's layout, which keras-hub's tokenizer shifts by one.
        "xlm_roberta": dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),
    }[kind]
    text = [" ".join(WORDS[i : i + 6]) for i in range(len(WORDS))]
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([*text, *_EXTRA_TEXT]),
        model_writer=proto,
        vocab_size=96,
        model_type="unigram",
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
        **special,
    )
    return proto.getvalue()


def _byte_pair_vocabulary():
    """Byte symbols, RoBERTa's special tokens, and merges that spell each
    word of `WORDS` whole, with and without its leading space (`Ġ`)."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *byte_symbols()]
    merges = []
    for word in WORDS:
        for spelled in ("Ġ" + word, word):
            piece = spelled[0]
            for char in spelled[1:]:
                merges.append(f"{piece} {char}")
                piece += char
                tokens.append(piece)
    tokens = [*dict.fromkeys(tokens), "<mask>"]
    vocabulary = {token: i for i, token in enumerate(tokens)}
    return vocabulary, list(dict.fromkeys(merges))


def small_tokenizer(family="bert"):
    """A small keras-hub tokenizer of `family`'s kind.

    Args:
        family: one of `FAMILY_NAMES`. Defaults to `"bert"`.

    Returns:
        A keras-hub tokenizer of the family (`BertTokenizer`,
        `RobertaTokenizer`, `AlbertTokenizer`, ...).

    Example:

    >>> tokenizer = kfinetune.testing.small_tokenizer("roberta")
    >>> tokenizer.id_to_token(tokenizer(" movie")[0])
    'Ġmovie'
    """
    family = _family(family)
    models = keras_hub.models
    if family.tokenizer == encoders.WORDPIECE:
        tokenizer_class = {
            "BERT": models.BertTokenizer,
            "ELECTRA": models.ElectraTokenizer,
            "DistilBERT": models.DistilBertTokenizer,
        }[family.name]
        return tokenizer_class(
            vocabulary=_wordpiece_vocabulary(), lowercase=True
        )
    if family.tokenizer == encoders.BYTE_BPE:
        vocabulary, merges = _byte_pair_vocabulary()
        return models.RobertaTokenizer(vocabulary, merges)
    kind, tokenizer_class = {
        "ALBERT": ("albert", models.AlbertTokenizer),
        "DeBERTa-v3": ("deberta_v3", models.DebertaV3Tokenizer),
        "XLM-RoBERTa": ("xlm_roberta", models.XLMRobertaTokenizer),
    }[family.name]
    return tokenizer_class(proto=_sentencepiece_proto(kind))


def small_backbone(
    family="bert",
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
    """Builds a small randomly initialised keras-hub encoder of `family`.

    Its vocabulary is `small_tokenizer(family)`'s. ALBERT and ELECTRA
    embed at half the hidden size (their embeddings are projected up).

    Args:
        family: one of `FAMILY_NAMES`. Defaults to `"bert"`.
        num_layers: transformer layers. Defaults to `2`.
        num_heads: attention heads. Defaults to `4`.
        hidden_dim: hidden size. Defaults to `32`.
        intermediate_dim: feed-forward size. Defaults to `64`.
        max_sequence_length: position embeddings. Defaults to `64`.
        dropout: dropout rate. Defaults to `0.0`.
        weight_scale: standard deviation every kernel and embedding table
            is redrawn with (see `small_bert_backbone`). Defaults to `0.2`.
        seed: the seed of the random weights. Defaults to `0`.
        dtype: a dtype or dtype policy name. Defaults to the global policy.

    Returns:
        A built keras-hub backbone of the family.

    Example:

    >>> backbone = kfinetune.testing.small_backbone("roberta")
    >>> sorted(backbone.input)
    ['padding_mask', 'token_ids']
    """
    tokenizer = small_tokenizer(family)
    family = _family(family)
    common = dict(
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        max_sequence_length=max_sequence_length,
        dtype=dtype,
    )
    if family is encoders.ALBERT or family is encoders.ELECTRA:
        common["embedding_dim"] = hidden_dim // 2
    if family is encoders.DEBERTA_V3:
        common["bucket_size"] = max_sequence_length // 2
    # keras-hub's ELECTRA alone calls the vocabulary size `vocab_size`.
    size_argument = (
        "vocab_size" if family is encoders.ELECTRA else "vocabulary_size"
    )
    keras.utils.set_random_seed(seed)
    backbone = family.backbone(
        **{size_argument: tokenizer.vocabulary_size()}, **common
    )
    _rescale(backbone, weight_scale, seed)
    return backbone
