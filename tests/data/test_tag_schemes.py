"""Tag schemes: checks, conversions and the constraints a CRF takes."""

import itertools

import numpy as np
import pytest

from kfinetune import data
from kfinetune import evaluation

IOB2_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def valid_iob2(length):
    """Every valid IOB2 sentence of `length` words over two types."""
    for tags in itertools.product(IOB2_TAGS, repeat=length):
        try:
            data.check_tags(tags, "IOB2")
        except ValueError:
            continue
        yield list(tags)


def test_conversions_keep_the_entities():
    sentences = [tags for n in (1, 2, 3, 4) for tags in valid_iob2(n)]
    assert len(sentences) > 100
    for tags in sentences:
        entities = evaluation.extract_entities(tags, "BIO")
        iobes = data.convert_tags(tags, "IOB2", "IOBES")
        data.check_tags(iobes, "IOBES")
        assert evaluation.extract_entities(iobes, "IOBES") == entities
        assert data.convert_tags(iobes, "IOBES", "IOB2") == tags


def test_iob1_becomes_iob2():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-PER", "B-PER"]
    assert data.convert_tags(iob1, "IOB1", "IOB2") == [
        "B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-PER", "B-PER",
    ]  # fmt: skip
    assert data.convert_tags(iob1, "IOB1", "IOBES") == [
        "B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-PER", "S-PER",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "tags,scheme,message",
    [
        (["O", "I-PER"], "IOB2", "word 1: 'I-PER' follows 'O'.*IOB1"),
        (["I-PER"], "BIO", "starts with 'I-PER'.*scheme='IOB1'"),
        (["B-PER", "I-LOC"], "IOB2", "'I-LOC' follows 'B-PER'"),
        (["B-PER", "O"], "IOBES", "not valid IOBES"),
        (["S-PER", "E-PER"], "IOBES", "not valid IOBES"),
        (["O", "B-PER"], "IOB1", "B-X only starts an entity right after"),
        (["E-PER"], "IOB2", "tags of scheme 'IOB2' are O or B-TYPE, I-TYPE"),
        (["PER"], "IOBES", "Received: tag='PER'"),
        (["O-PER"], "IOB2", "Received: tag='O-PER'"),
    ],
)
def test_invalid_tags_are_named(tags, scheme, message):
    with pytest.raises(ValueError, match=message):
        data.check_tags(tags, scheme)


def test_bad_schemes_are_refused():
    with pytest.raises(ValueError, match="Received: scheme='BILOU'"):
        data.check_tags(["O"], "BILOU")
    with pytest.raises(ValueError, match="Received: target='IOB1'"):
        data.convert_tags(["O"], "IOB2", "IOB1")
    with pytest.raises(ValueError, match="Received: scheme='IOB1'"):
        data.tag_constraints(IOB2_TAGS, "IOB1")
    with pytest.raises(ValueError, match="Received: tag='NN'"):
        data.tag_constraints(("O", "NN"), "IOB2")


@pytest.mark.parametrize("scheme", ["IOB2", "IOBES"])
def test_constraints_allow_exactly_the_valid_sentences(scheme):
    if scheme == "IOB2":
        names = IOB2_TAGS
    else:
        names = ("O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC")
    constraints = data.tag_constraints(names, scheme)
    transitions = np.asarray(constraints["transitions"])
    for length in (1, 2, 3):
        for path in itertools.product(range(len(names)), repeat=length):
            allowed = (
                constraints["start"][path[0]]
                and constraints["end"][path[-1]]
                and all(transitions[a, b] for a, b in itertools.pairwise(path))
            )
            try:
                data.check_tags([names[i] for i in path], scheme)
                valid = True
            except ValueError:
                valid = False
            assert allowed == valid, [names[i] for i in path]


IOB1_FILE = """\
-DOCSTART- -X- O O

EU NNP I-ORG
rejects VBZ O
German JJ I-MISC
call NN O

Peter NNP I-PER
Blackburn NNP I-PER
Smith NNP B-PER
"""


def test_from_conll_converts_iob1_and_refuses_it_as_iob2(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(IOB1_FILE, encoding="utf-8")
    sentences = data.from_conll(path, scheme="IOB1")
    assert sentences.tags == (
        ("B-ORG", "O", "B-MISC", "O"),
        ("B-PER", "I-PER", "B-PER"),
    )
    assert sentences.tag_names == ("O", "B-MISC", "B-ORG", "B-PER", "I-PER")
    with pytest.raises(ValueError, match=r"line 3, word 0.*scheme='IOB1'"):
        data.from_conll(path, scheme="IOB2")
    # Unchecked by default: the tags as they are.
    assert data.from_conll(path).tags[0] == ("I-ORG", "O", "I-MISC", "O")
    # The file's own tags, but not the B- tags conversion makes.
    with pytest.raises(ValueError, match=r"\['B-MISC', 'B-ORG'\] which"):
        data.from_conll(
            path,
            scheme="IOB1",
            tags=("O", "I-ORG", "I-MISC", "I-PER", "B-PER"),
        )
    with pytest.raises(ValueError, match="Received: scheme='iob'"):
        data.from_conll(path, scheme="iob")


def test_tagged_sentences_convert_to_iobes_and_back(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(IOB1_FILE, encoding="utf-8")
    iob2 = data.from_conll(path, scheme="IOB1")
    iobes = iob2.convert("IOBES")
    assert iobes.tags == (
        ("S-ORG", "O", "S-MISC", "O"),
        ("B-PER", "E-PER", "S-PER"),
    )
    assert iobes.sentences == iob2.sentences
    assert iobes.tag_names[0] == "O"
    assert iobes.convert("IOB2") == iob2
