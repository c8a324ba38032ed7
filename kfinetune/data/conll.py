"""`from_conll`: tagged sentences from CoNLL / IOB column files."""

import dataclasses
import numbers
import pathlib

from kfinetune import checks
from kfinetune.data import tag_schemes
from kfinetune.data.token_labels import align_tags


@dataclasses.dataclass(frozen=True)
class TaggedSentences:
    """Sentences of words with one tag per word, and the tag vocabulary.

    Attributes:
        sentences: a tuple of sentences, each a tuple of word strings.
        tags: the tag strings, shaped like `sentences`.
        tag_names: the tag vocabulary in label order: `O` first (when
            present), then the other tags sorted.

    Example:

    ```python
    data = kfinetune.data.from_conll("train.txt")
    data.sentences[0], data.tags[0]  # ('John', 'lives'), ('B-PER', 'O')
    ```
    """

    sentences: tuple
    tags: tuple
    tag_names: tuple

    def align(self, tokenizer, sequence_length=64, overlap=8):
        """Aligns the tags to word pieces (see `kfinetune.data.align_tags`).

        Args:
            tokenizer: a keras-hub BERT-family tokenizer, or a preprocessor
                holding one.
            sequence_length: the padded length. Defaults to `64`.
            overlap: the words that consecutive windows of a sentence too
                long for one row share. Defaults to `8`.

        Returns:
            A `kfinetune.data.TokenLabels`: model inputs, labels, sample
            weights, `dataset()` for `fit` and `to_words()` for predictions.

        Example:

        ```python
        aligned = data.align(tokenizer, sequence_length=64)
        model.fit(aligned.dataset().batch(16))
        ```
        """
        return align_tags(
            self.sentences,
            self.tags,
            tokenizer,
            self.tag_names,
            sequence_length,
            overlap,
        )

    def convert(self, scheme):
        """The same sentences with their entity tags in another scheme.

        Args:
            scheme: `"IOB2"` (or `"BIO"`) or `"IOBES"`. The tags must be
                valid IOB2 or IOBES now (whichever they are is detected).

        Returns:
            A new `TaggedSentences`; its `tag_names` are the converted
            tags, `O` first then sorted.

        Raises:
            ValueError: an unknown scheme, or tags valid in neither IOB2
                nor IOBES.

        Example:

        ```python
        iobes = kfinetune.data.from_conll("train.txt", scheme="IOB2").convert(
            "IOBES")
        ```
        """
        checks.one_of("scheme", scheme, ("IOB2", "BIO", "IOBES"))
        source = _detect(self.tags)
        tags = tuple(
            tuple(tag_schemes.convert_tags(row, source, scheme))
            for row in self.tags
        )
        return TaggedSentences(
            self.sentences,
            tags,
            _tag_order(tag for row in tags for tag in row),
        )

    def dataset(
        self, tokenizer, sequence_length=64, sample_weights=True, overlap=8
    ):
        """A `tf.data.Dataset` of `(inputs, labels[, sample_weight])` rows.

        Shorthand for `align(tokenizer, sequence_length, overlap).dataset(
        sample_weights)`.

        Args:
            tokenizer: see `align`.
            sequence_length: see `align`. Defaults to `64`.
            overlap: see `align`. Defaults to `8`.
            sample_weights: `True` for a softmax head, `False` for a CRF
                head. Defaults to `True`.

        Returns:
            An unbatched `tf.data.Dataset`.

        Example:

        ```python
        model.fit(data.dataset(tokenizer).batch(16), epochs=3)
        ```
        """
        aligned = self.align(tokenizer, sequence_length, overlap)
        return aligned.dataset(sample_weights)


def _detect(tags):
    """`"IOB2"` or `"IOBES"`: the scheme every sentence of `tags` is valid
    in (IOB2 first: tags valid in both have no E- or S- prefix)."""
    errors = []
    for scheme in ("IOB2", "IOBES"):
        try:
            for number, row in enumerate(tags):
                tag_schemes.check_tags(row, scheme, f"sentence {number}")
            return scheme
        except ValueError as error:
            errors.append(str(error))
    raise ValueError(
        "The tags are valid in neither IOB2 nor IOBES. IOB2: "
        f"{errors[0]} IOBES: {errors[1]}"
    )


def _tag_order(tags):
    # `O` first, so label 0 is "no entity" (the tag of [CLS] and [SEP]).
    return tuple(sorted(set(tags), key=lambda tag: (tag != "O", tag)))


def _fail(path, number, message, line):
    raise ValueError(
        f"{path}, line {number}: {message} Received: line={line!r}"
    )


def from_conll(
    path,
    token_column=0,
    tag_column=-1,
    tags=None,
    encoding="utf-8",
    scheme=None,
):
    """Reads tagged sentences from a CoNLL / IOB column file.

    Each line holds one word and its columns separated by whitespace (CoNLL
    2003: `word POS chunk NER`); a blank line ends a sentence, and
    `-DOCSTART-` lines are skipped.

    Args:
        path: the file path.
        token_column: the column of the word. Defaults to `0`.
        tag_column: the column of the tag; negative counts from the end.
            Defaults to `-1` (the last column).
        tags: the tag vocabulary, in label order; a tag in the file that is
            not in it is an error. Defaults to every tag in the file, `O`
            first then sorted.
        encoding: the file encoding. Defaults to `"utf-8"`.
        scheme: the entity tagging scheme of the file, checked sentence by
            sentence: `"IOB2"` (or `"BIO"`), `"IOBES"`, or `"IOB1"` (the
            original CoNLL-2003 files, where `I-X` starts entities),
            which is converted to IOB2 on reading. `None` reads the tags
            as they are, unchecked (part-of-speech tags, chunks). Defaults
            to `None`.

    Returns:
        A `TaggedSentences`.

    Raises:
        ValueError: naming the file, line number and line, for a line with
            too few columns or a tag not in `tags`; naming the file and the
            sentence's first line for tags not valid in `scheme` (an IOB2
            file that is IOB1 is told so); also for a missing file, a file
            with no sentence, or bad arguments.

    Example:

    ```python
    data = kfinetune.data.from_conll("train.txt")  # CoNLL 2003: NER last
    aligned = data.align(tokenizer, sequence_length=64)
    model.fit(aligned.dataset().batch(16))
    ```
    """
    for name, value in (
        ("token_column", token_column),
        ("tag_column", tag_column),
    ):
        # `numbers.Integral` takes NumPy integers too; bools are not columns.
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise ValueError(
                f"`{name}` must be an integer. Received: {name}={value!r}"
            )
    if scheme is not None:
        checks.one_of("scheme", scheme, tag_schemes.SCHEMES)
    if tags is not None:
        tags = tuple(tags)
        if not tags or len(set(tags)) != len(tags):
            raise ValueError(
                "`tags` must be a non-empty sequence of distinct tags. "
                f"Received: tags={tags!r}"
            )
    path = pathlib.Path(path)
    if not path.is_file():
        # As `from_csv`, `from_jsonl` and `from_squad` do.
        raise FileNotFoundError(
            f"No such file: '{path}'. Received: path={str(path)!r}"
        )
    known = set(tags) if tags is not None else None
    needed = max(token_column, tag_column, -1 - token_column, -1 - tag_column)
    sentences, sentence_tags, words, word_tags = [], [], [], []

    first_line = [None]

    def end_sentence():
        if words:
            row = tuple(word_tags)
            if scheme is not None:
                where = f"{path}, sentence starting on line {first_line[0]}"
                tag_schemes.check_tags(row, scheme, where)
                if scheme == "IOB1":
                    row = tuple(tag_schemes.convert_tags(row, "IOB1", "IOB2"))
            sentences.append(tuple(words))
            sentence_tags.append(row)
            words.clear()
            word_tags.clear()

    with open(path, encoding=encoding) as file:
        for number, line in enumerate(file, start=1):
            columns = line.split()
            if not columns:
                end_sentence()
                continue
            if columns[0] == "-DOCSTART-":
                end_sentence()
                continue
            if len(columns) <= needed:
                _fail(
                    path,
                    number,
                    f"expected at least {needed + 1} whitespace-separated "
                    f"columns (token_column={token_column}, "
                    f"tag_column={tag_column}), found {len(columns)}.",
                    line.rstrip("\n"),
                )
            tag = columns[tag_column]
            if known is not None and tag not in known:
                _fail(
                    path,
                    number,
                    f"unknown tag {tag!r}, not in `tags`={tags!r}.",
                    line.rstrip("\n"),
                )
            if not words:
                first_line[0] = number
            words.append(columns[token_column])
            word_tags.append(tag)
    end_sentence()
    if not sentences:
        raise ValueError(
            f"{path} holds no tagged sentence. Received: path={str(path)!r}"
        )
    if tags is None:
        tags = _tag_order(tag for row in sentence_tags for tag in row)
    else:
        # IOB1 converted to IOB2 may hold B- tags the file did not.
        missing = sorted(
            {tag for row in sentence_tags for tag in row} - set(tags)
        )
        if missing:
            raise ValueError(
                f"{path}: converted from IOB1, the tags include {missing} "
                f"which are not in `tags`. Received: tags={tags!r}"
            )
    return TaggedSentences(tuple(sentences), tuple(sentence_tags), tags)
