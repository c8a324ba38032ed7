"""`SynonymTable` and `embedding_synonyms`: neighbours in a model's
token-embedding table."""

import dataclasses

import keras_hub
import numpy as np

from kfinetune import checks

# Function words: replacing or inserting them changes little, and the
# negations among them ("not", "no", "never") would flip a sentiment.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because
    been before being below between both but by can could did do does doing
    down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves never none nothing
    """.split()
)

# Queries compared with the whole candidate vocabulary at once: 512 rows of
# 20,000 float32 similarities are 40 MB.
_CHUNK = 512


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SynonymTable:
    """Words and their synonyms, for `synonym_replacement` and
    `random_insertion`.

    Keys are matched lowercased, so a table built from an uncased model's
    vocabulary serves any casing. `embedding_synonyms` builds one from a
    model; any dict of word to synonyms works too.

    Args:
        synonyms: a dict mapping each word to a non-empty sequence of
            synonyms (strings without whitespace).
        similarities: optionally, a dict mapping each word to the
            similarity of each of its synonyms, for reading the table.
            Defaults to `None`.

    Raises:
        ValueError: if a word or synonym is not a non-empty string without
            whitespace, a word has no synonyms, or two words are equal once
            lowercased.

    Example:

    ```python
    table = kfinetune.data.augment.SynonymTable(
        {"good": ["great", "nice"], "movie": ["film"]})
    table["Good"]  # ("great", "nice")
    ```
    """

    synonyms: dict
    similarities: dict | None = None

    def __post_init__(self):
        if not isinstance(self.synonyms, dict):
            raise ValueError(
                "`synonyms` must be a dict of word to synonyms. "
                f"Received: synonyms={self.synonyms!r}"
            )
        table = {}
        for word, neighbours in self.synonyms.items():
            _check_word("synonyms", word)
            if isinstance(neighbours, str) or not len(neighbours):
                raise ValueError(
                    f"`synonyms[{word!r}]` must be a non-empty sequence of "
                    f"strings. Received: {neighbours!r}"
                )
            for neighbour in neighbours:
                _check_word(f"synonyms[{word!r}]", neighbour)
            key = word.lower()
            if key in table:
                raise ValueError(
                    f"`synonyms` has two keys equal to {key!r} once "
                    f"lowercased. Received: {word!r}"
                )
            table[key] = tuple(neighbours)
        object.__setattr__(self, "synonyms", table)

    def __len__(self):
        return len(self.synonyms)

    def __contains__(self, word):
        return word.lower() in self.synonyms

    def __getitem__(self, word):
        return self.synonyms[word.lower()]

    def __repr__(self):
        shown = ", ".join(
            f"{word!r}: {list(neighbours)}"
            for word, neighbours in list(self.synonyms.items())[:3]
        )
        more = ", ..." if len(self) > 3 else ""
        return f"SynonymTable({len(self)} words: {{{shown}{more}}})"


def _check_word(name, word):
    if not isinstance(word, str) or not word or len(word.split()) != 1:
        raise ValueError(
            f"`{name}` must hold non-empty strings without whitespace. "
            f"Received: {word!r}"
        )


def _backbone_and_tokenizer(model, tokenizer):
    backbone = model
    if isinstance(model, keras_hub.models.Task):
        backbone = model.backbone
        if tokenizer is None and model.preprocessor is not None:
            tokenizer = model.preprocessor.tokenizer
    if not isinstance(backbone, keras_hub.models.Backbone) or (
        backbone.token_embedding is None
    ):
        raise ValueError(
            "`model` must be a keras-hub backbone with a token embedding, "
            f"or a task built on one. Received: model={model!r}"
        )
    if not hasattr(tokenizer, "get_vocabulary"):
        raise ValueError(
            "`tokenizer` must be the keras-hub tokenizer of the model (the "
            "model's preprocessor has it when `model` is a task). "
            f"Received: tokenizer={tokenizer!r}"
        )
    return backbone, tokenizer


def _is_candidate(token, special, min_length, stop_words):
    # Whole ASCII words only: no `##` continuation pieces, no special or
    # `[unused]` entries, no numbers, punctuation or other scripts.
    return (
        token not in special
        and token.isascii()
        and token.isalpha()
        and len(token) >= min_length
        and token.lower() not in stop_words
    )


def embedding_synonyms(
    model,
    tokenizer=None,
    k=5,
    words=None,
    min_length=3,
    stop_words=STOP_WORDS,
):
    """Synonyms from a model's own token embeddings: nearest neighbours.

    For each whole-word entry of the tokenizer's vocabulary, the `k`
    entries whose input embeddings have the highest cosine similarity. Only
    whole words count, as keys and as neighbours: no `##` word pieces, no
    special or `[unused]` tokens, no numbers or punctuation, no words
    shorter than `min_length` and none of `stop_words`.

    Embedding neighbours are words used in similar contexts, which is not
    the same as synonyms: antonyms ("good" and "bad") and related words
    come up too. Read a few before training with them.

    Args:
        model: a keras-hub backbone, or a task (e.g. a `BertTextClassifier`)
            whose backbone is used.
        tokenizer: the model's keras-hub tokenizer. Defaults to `None`: the
            tokenizer of `model.preprocessor` when `model` is a task.
        k: neighbours per word, a positive integer. Defaults to `5`.
        words: optionally, the only words to find neighbours for (e.g. the
            words of the training texts; lowercased, and those that are not
            candidates skipped), which is much faster than the whole
            vocabulary. Neighbours still come from the whole vocabulary.
            Defaults to `None`.
        min_length: the shortest word, in characters, used as a key or a
            neighbour. Defaults to `3`.
        stop_words: lowercase words never used as a key or a neighbour.
            Defaults to `kfinetune.data.augment.STOP_WORDS` (English
            function words, negations included).

    Returns:
        A `SynonymTable` with each word's neighbours, most similar first,
        and their cosine similarities.

    Raises:
        ValueError: if `model` has no token embedding, `tokenizer` is
            missing or its vocabulary does not match the embedding table, or
            `k` or `min_length` is not a positive integer.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    synonyms = kfinetune.data.augment.embedding_synonyms(model, k=5)
    synonyms["happy"]
    ```
    """
    checks.positive_integer("k", k)
    checks.positive_integer("min_length", min_length)
    backbone, tokenizer = _backbone_and_tokenizer(model, tokenizer)
    vocabulary = list(tokenizer.get_vocabulary())
    embeddings = np.asarray(
        backbone.token_embedding.embeddings.numpy(), dtype=np.float32
    )
    if len(vocabulary) != embeddings.shape[0]:
        raise ValueError(
            f"The tokenizer has {len(vocabulary)} tokens but the model's "
            f"embedding table has {embeddings.shape[0]} rows: pass the "
            f"model's own tokenizer. Received: tokenizer={tokenizer!r}"
        )
    stop_words = frozenset(word.lower() for word in stop_words)
    special = set(getattr(tokenizer, "special_tokens", ()))
    candidates = np.array(
        [
            index
            for index, token in enumerate(vocabulary)
            if not (token.startswith("[") and token.endswith("]"))
            and _is_candidate(token, special, min_length, stop_words)
        ],
        dtype=np.int64,
    )
    if words is None:
        queries = candidates
    else:
        wanted = {str(word).lower() for word in words}
        queries = np.array(
            [i for i in candidates if vocabulary[i] in wanted], dtype=np.int64
        )
    count = min(k, len(candidates) - 1)
    if count < 1:
        return SynonymTable({}, {})
    vectors = embeddings[candidates]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    position = {int(index): row for row, index in enumerate(candidates)}
    synonyms, similarities = {}, {}
    for start in range(0, len(queries), _CHUNK):
        rows = np.array([position[int(i)] for i in queries[start:][:_CHUNK]])
        scores = vectors[rows] @ vectors.T
        # A word is not its own synonym.
        scores[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-scores, count, axis=1)[:, :count]
        for row, picks, row_scores in zip(rows, top, scores, strict=True):
            picks = picks[np.argsort(-row_scores[picks], kind="stable")]
            word = vocabulary[candidates[row]]
            synonyms[word] = [vocabulary[candidates[p]] for p in picks]
            similarities[word] = [float(row_scores[p]) for p in picks]
    return SynonymTable(synonyms, similarities)
