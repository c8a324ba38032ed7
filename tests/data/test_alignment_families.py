"""Word / piece alignment (`kfinetune.data.align_tags`) and question
answering character offsets (`kfinetune.qa.prepare_features`) for every
tokenizer kind: WordPiece, byte-level BPE and SentencePiece."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfinetune import data
from kfinetune import encoders
from kfinetune import export
from kfinetune import qa
from kfinetune import testing
from kfinetune.data import word_pieces

KINDS = ["bert", "roberta", "albert", "deberta_v3", "xlm_roberta"]
TAGS = ("O", "B-PER", "I-PER", "B-LOC")
WORDS = ["Café", "don't!", "movie", "«quote»", "naïve"]
WORD_TAGS = ["B-PER", "I-PER", "O", "B-LOC", "O"]
# Each word's first piece: the whole word's in WordPiece, a bare `Ġ` or
# `▁` before a word whose start the vocabulary has no piece for.
FIRST_PIECES = {
    "bert": ["café", "don", "movie", "«", "na"],
    "roberta": ["Ġ", "Ġd", "Ġmovie", "Ġ", "Ġn"],
    "albert": ["▁", "▁d", "▁movie", "▁", "▁n"],
    "deberta_v3": ["▁", "▁d", "▁movie", "▁", "▁n"],
    "xlm_roberta": ["▁", "▁d", "▁movie", "▁", "▁n"],
}


@pytest.fixture(scope="module")
def tokenizers():
    return {name: testing.small_tokenizer(name) for name in KINDS}


def pieces(tokenizer, ids):
    return [tokenizer.id_to_token(int(i)) for i in ids]


def test_family_of_tokenizer_names_every_family_and_refuses_others():
    for name, family in testing.FAMILY_NAMES.items():
        tokenizer = testing.small_tokenizer(name)
        assert encoders.family_of_tokenizer(tokenizer) is family
    preprocessor = testing.small_bert_preprocessor()
    assert encoders.family_of_tokenizer(preprocessor) is encoders.BERT
    gpt2 = testing.models.small_byte_tokenizer()
    with pytest.raises(
        ValueError, match=r"RobertaTokenizer.*tokenizer=<GPT2Tokenizer"
    ):
        encoders.family_of_tokenizer(gpt2)
    with pytest.raises(ValueError, match="tokenizer=<GPT2Tokenizer"):
        data.align_tags([["a"]], [["O"]], gpt2, TAGS)


@pytest.mark.parametrize("name", KINDS)
def test_words_align_as_in_running_text(name, tokenizers):
    tokenizer = tokenizers[name]
    family = testing.FAMILY_NAMES[name]
    aligned = data.align_tags([WORDS], [WORD_TAGS], tokenizer, TAGS, 32)
    (starts,) = aligned.word_starts
    length = int(aligned.inputs["padding_mask"][0].sum())
    ids = aligned.inputs["token_ids"][0]
    start, end, pad = word_pieces.special_token_ids(tokenizer)
    assert (ids[0], ids[length - 1]) == (start, end)
    assert (ids[length:] == pad).all()
    assert pieces(tokenizer, ids[list(starts)]) == FIRST_PIECES[name]
    # The words' pieces are those of the sentence in running text: after
    # a space each (Hugging Face's `add_prefix_space=True`) for BPE.
    text = " ".join(WORDS)
    if family.tokenizer == encoders.BYTE_BPE:
        text = " " + text
    assert ids[1 : length - 1].tolist() == [int(i) for i in tokenizer(text)]
    # Tags on first pieces, continuation tags on the others.
    index = {tag: i for i, tag in enumerate(TAGS)}
    labels = aligned.labels[0]
    assert labels[list(starts)].tolist() == [index[t] for t in WORD_TAGS]
    bounds = [*starts, length - 1]
    continuation = {"B-PER": "I-PER", "I-PER": "I-PER"}
    for word, tag in enumerate(WORD_TAGS):
        rest = labels[bounds[word] + 1 : bounds[word + 1]]
        assert (rest == index[continuation.get(tag, tag)]).all()
    assert labels[0] == labels[length - 1] == index["O"]
    assert (labels[length:] == -1).all()
    mask = np.zeros_like(ids)
    mask[list(starts)] = 1
    np.testing.assert_array_equal(aligned.word_mask[0], mask)
    np.testing.assert_array_equal(aligned.sample_weight[0], mask)
    # Only the family's backbone inputs.
    assert tuple(aligned.inputs) == (
        ("token_ids", "segment_ids", "padding_mask")
        if family.segment_ids
        else ("token_ids", "padding_mask")
    )
    # One-hot predictions of the labels read back as the tags.
    predictions = keras.ops.one_hot(np.maximum(aligned.labels, 0), len(TAGS))
    assert aligned.to_words(np.asarray(predictions)) == [WORD_TAGS]


@pytest.mark.parametrize("name", ["roberta", "xlm_roberta"])
def test_long_sentences_split_into_windows_keep_every_word(name, tokenizers):
    tokenizer = tokenizers[name]
    words = (WORDS + ["the", "day"]) * 4
    tags = (WORD_TAGS + ["O", "B-LOC"]) * 4
    aligned = data.align_tags([words], [tags], tokenizer, TAGS, 16, overlap=2)
    assert len(aligned.word_starts) > 3
    for row, starts in enumerate(aligned.word_starts):
        first = aligned.first_word[row]
        ids = aligned.inputs["token_ids"][row]
        for k, position in enumerate(starts):
            expected = word_pieces.word_token_ids(tokenizer, [words[first + k]])
            assert ids[position] == expected[0][0]
    predictions = np.maximum(aligned.labels, 0)
    assert aligned.to_words(predictions) == [tags]


def test_a_word_the_tokenizer_erases_gets_the_unknown_token(tokenizers):
    for name in ("bert", "albert", "xlm_roberta"):
        tokenizer = tokenizers[name]
        aligned = data.align_tags([["movie", "\x07"]], None, tokenizer, TAGS)
        position = aligned.word_starts[0][1]
        unknown = word_pieces.unknown_token_id(tokenizer)
        assert aligned.inputs["token_ids"][0, position] == unknown
    # A space before the word: byte-level BPE never erases one.
    roberta = tokenizers["roberta"]
    assert word_pieces.unknown_token_id(roberta) is None
    assert pieces(roberta, word_pieces.word_token_ids(roberta, [""])[0]) == [
        "Ġ"
    ]


def test_inputs_for_gives_a_model_exactly_its_inputs(tokenizers):
    aligned = data.align_tags(
        [WORDS], [WORD_TAGS], tokenizers["roberta"], TAGS, 16
    )
    assert "segment_ids" not in aligned.inputs

    def model(*names):
        inputs = {n: keras.Input((16,), dtype="int32", name=n) for n in names}
        return keras.Model(inputs, keras.layers.Add()(list(inputs.values())))

    got = aligned.inputs_for(model("token_ids", "padding_mask"))
    assert sorted(got) == ["padding_mask", "token_ids"]
    names = ("token_ids", "segment_ids", "padding_mask", "word_mask")
    got = aligned.inputs_for(model(*names))
    assert sorted(got) == sorted(names)
    assert not got["segment_ids"].any()
    np.testing.assert_array_equal(got["word_mask"], aligned.word_mask)
    with pytest.raises(ValueError, match=r"\['position_ids'\]"):
        aligned.inputs_for(model("token_ids", "position_ids"))


CONTEXT = "Le Café naïve, don't!  «quote» au U.S.A. movie\tday"
ANSWERS = [
    "Café",
    "naïve",
    "don't",
    "«quote»",
    "quote",
    "U.S.A",
    "movie",
    "day",
]
QUESTION = "the movie?"


def qa_examples(answers, context=CONTEXT):
    return [
        data.QAExample(str(i), QUESTION, context, (a,), (context.index(a),))
        for i, a in enumerate(answers)
    ]


def span_text(features, row, context=CONTEXT):
    first = features.start_positions[row]
    last = features.end_positions[row]
    offsets = features.offsets[row]
    return context[offsets[first, 0] : offsets[last, 1]]


def one_hot_logits(features):
    start = np.full(features.token_ids.shape, -10.0)
    end = start.copy()
    rows = np.arange(len(start))
    start[rows, features.start_positions] = 10.0
    end[rows, features.end_positions] = 10.0
    return start, end


@pytest.mark.parametrize("name", KINDS)
def test_qa_offsets_give_back_the_exact_answers(name, tokenizers):
    tokenizer = tokenizers[name]
    family = testing.FAMILY_NAMES[name]
    examples = qa_examples(ANSWERS)
    features = qa.prepare_features(examples, tokenizer, sequence_length=64)
    assert len(features.token_ids) == len(ANSWERS)  # One window each.
    # The family's packing, segment ids for every family.
    start, end, pad = word_pieces.special_token_ids(tokenizer)
    question = [int(i) for i in tokenizer(QUESTION)]
    head = [start, *question, *[end] * family.pair_separator]
    row = features.token_ids[0]
    length = int(features.padding_mask[0].sum())
    assert row[: len(head)].tolist() == head
    assert (row[length - 1], row[length]) == (end, pad)
    segments = [0] * len(head) + [1] * (length - len(head))
    assert features.segment_ids[0, :length].tolist() == segments
    assert (features.offsets[0, : len(head)] == -1).all()
    for row in range(len(ANSWERS)):
        assert span_text(features, row) == ANSWERS[row]
    answers = qa.postprocess(features, *one_hot_logits(features))
    assert list(answers.values()) == ANSWERS


def test_byte_level_pieces_split_a_character_and_keep_it(tokenizers):
    tokenizer = tokenizers["roberta"]
    features = qa.prepare_features(
        qa_examples(["é", "Le"]), tokenizer, sequence_length=64
    )
    # "é" is two bytes, two pieces: each covers the character.
    first, last = features.start_positions[0], features.end_positions[0]
    assert pieces(tokenizer, features.token_ids[0, first : last + 1]) == [
        "Ã",
        "©",
    ]
    assert span_text(features, 0) == "é"
    # The context's first word has no space before it in running text.
    assert pieces(tokenizer, features.token_ids[1, 6:8]) == ["L", "e"]
    assert span_text(features, 1) == "Le"
    # `Ġ` pieces' spaces are trimmed off their spans.
    spans = features.offsets[0]
    space = tokenizer.token_to_id("Ġ")
    bare = np.flatnonzero(features.token_ids[0] == space)
    assert bare.size and (spans[bare, 0] == spans[bare, 1]).all()


def test_a_bare_sentencepiece_word_start_covers_no_character(tokenizers):
    tokenizer = tokenizers["xlm_roberta"]
    features = qa.prepare_features(
        qa_examples(["Café"]), tokenizer, sequence_length=64
    )
    first = features.start_positions[0]
    assert pieces(tokenizer, features.token_ids[0, first - 1 : first + 1]) == [
        "▁",
        "C",
    ]
    start = CONTEXT.index("Café")
    assert features.offsets[0, first - 1].tolist() == [start, start]


@pytest.mark.parametrize("name", ["bert", "roberta", "xlm_roberta"])
def test_qa_windows_of_a_long_context_keep_exact_offsets(name, tokenizers):
    context = " ".join([CONTEXT] * 4)
    # Each answer in another repetition of the context.
    answers = {"Café": 0, "«quote»": 3, "U.S.A": 2}
    examples = [
        data.QAExample(
            str(i),
            QUESTION,
            context,
            (answer,),
            (copy * (len(CONTEXT) + 1) + CONTEXT.index(answer),),
        )
        for i, (answer, copy) in enumerate(answers.items())
    ]
    features = qa.prepare_features(
        examples, tokenizers[name], sequence_length=32, document_stride=8
    )
    assert len(features.token_ids) > 3 * len(examples)
    hits = {e.id: 0 for e in examples}
    for row, index in enumerate(features.example_index):
        example = examples[index]
        if features.start_positions[row] == 0:
            continue
        hits[example.id] += 1
        assert span_text(features, row, context) == example.answers[0]
        first = features.start_positions[row]
        assert features.offsets[row, first, 0] >= example.answer_starts[0]
    assert all(hits.values())
    answers_out = qa.postprocess(features, *one_hot_logits(features))
    assert answers_out == {e.id: e.answers[0] for e in examples}


def tagger(name, sequence_length):
    backbone = testing.small_backbone(name, num_layers=1)
    names = encoders.input_names(backbone)
    inputs = {
        n: keras.Input((sequence_length,), dtype="int32", name=n) for n in names
    }
    hidden = encoders.sequence_output(backbone, inputs)
    return keras.Model(inputs, keras.layers.Dense(len(TAGS))(hidden))


def test_exported_tagger_tags_as_align_tags_for_sentencepiece(tmp_path):
    # One export (they are slow); the graph's pieces of the other kinds are
    # checked below.
    name = "xlm_roberta"
    sequence_length = 12
    tokenizer = testing.small_tokenizer(name)
    model = tagger(name, sequence_length)
    sentences = [
        " ".join(WORDS),
        "the movie",
        " ".join(WORDS * 2),  # Several windows.
    ]
    words = [s.split() for s in sentences]
    aligned = data.align_tags(
        words, None, tokenizer, TAGS, sequence_length, overlap=0
    )
    expected = aligned.to_words(
        testing.predict(model, aligned.inputs_for(model))
    )
    export.export_tagger(
        model, tokenizer, TAGS, tmp_path / "tagger", verbose=False
    )
    # Keep the loaded object: its variables die with it.
    loaded = export.load_text_classifier(tmp_path / "tagger")
    served = loaded.serve(tf.constant(sentences))
    for row, tags in enumerate(expected):
        count = len(tags)
        got = [t.decode() for t in served["tags"][row, :count].numpy()]
        assert got == tags


# WordPiece: tests/test_export.py.
@pytest.mark.parametrize("name", ["roberta", "albert"])
def test_graph_word_pieces_are_align_tags_pieces(name):
    from kfinetune.export import pieces as graph_pieces

    tokenizer = testing.small_tokenizer(name)
    words = [*WORDS, "\x07", "movie"]
    graph = tf.function(lambda w: graph_pieces.word_pieces(tokenizer, w, 4))
    got = graph(tf.constant(words)).to_list()
    expected = word_pieces.word_token_ids(tokenizer, words)
    assert got == [ids[:4] for ids in expected]


@pytest.mark.parametrize("name", ["roberta", "albert"])
def test_question_answerer_export_refuses_non_wordpiece(name, tmp_path):
    model = keras.Model(inputs := keras.Input((8,), dtype="int32"), inputs * 2)
    family = testing.FAMILY_NAMES[name].name
    with pytest.raises(ValueError, match=f"WordPiece tokenizer.*The {family}"):
        export.export_question_answerer(
            model, testing.small_tokenizer(name), tmp_path / "qa"
        )
    assert not (tmp_path / "qa").exists()


REFERENCE = json.loads(
    (
        pathlib.Path(__file__).parents[1]
        / "fixtures"
        / "alignment"
        / "reference.json"
    ).read_text()
)


@pytest.mark.parametrize("name", KINDS)
def test_alignment_and_offsets_match_hugging_face(name, tokenizers):
    """Against Hugging Face fast tokenizers built from the same
    vocabularies (tests/fixtures/alignment/make_reference.py)."""
    tokenizer = tokenizers[name]
    reference = REFERENCE[name]
    sentences = REFERENCE["sentences"]
    aligned = data.align_tags(sentences, None, tokenizer, TAGS, 40)
    for row, expected in enumerate(reference["words"]):
        length = int(aligned.inputs["padding_mask"][row].sum())
        ids = aligned.inputs["token_ids"][row, :length].tolist()
        assert ids == expected["input_ids"]
        # Hugging Face's first token of each word.
        word_ids = expected["word_ids"]
        firsts = [word_ids.index(k) for k in range(len(sentences[row]))]
        assert list(aligned.word_starts[row]) == firsts
    examples = [
        data.QAExample(str(i), question, context, (), (), True)
        for i, (question, context) in enumerate(REFERENCE["pairs"])
    ]
    features = qa.prepare_features(examples, tokenizer, sequence_length=64)
    sentencepiece = testing.FAMILY_NAMES[name].tokenizer == "sentencepiece"
    for row, expected in enumerate(reference["pairs"]):
        context = examples[row].context
        length = int(features.padding_mask[row].sum())
        assert (
            features.token_ids[row, :length].tolist() == expected["input_ids"]
        )
        for k, sequence in enumerate(expected["sequence_ids"]):
            ours = features.offsets[row, k].tolist()
            if sequence != 1:
                assert ours == [-1, -1]
                continue
            assert features.segment_ids[row, k] == 1
            start, end = expected["offsets"][k]
            if sentencepiece:
                # No span starts with whitespace (DeBERTa-v3's include
                # the space before a word); a bare `▁` covers nothing
                # (ALBERT's and XLM-RoBERTa's cover the next character).
                while start < end and context[start].isspace():
                    start += 1
                if tokenizer.id_to_token(expected["input_ids"][k]) == "▁":
                    end = start
            assert ours == [start, end]
