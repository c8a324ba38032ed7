"""`kfinetune.walk` (a model's layer tree) and `kfinetune.matcher` (the one
matcher of paths against patterns)."""

import keras
import pytest

from kfinetune import matcher
from kfinetune import testing
from kfinetune import walk


def test_sites_follow_graph_nodes_and_attributes():
    model = testing.small_bert_classifier()
    sites = {s.path: s for s in walk.sites(model)}
    backbone = next(s for s in sites.values() if s.layer is model.backbone)
    assert backbone.graph_node and backbone.parent is model
    encoder = sites["transformer_layer_0"]
    assert encoder.graph_node and encoder.parent is model.backbone
    query = sites["transformer_layer_0/self_attention_layer/query"]
    assert not query.graph_node
    assert query.attribute == "_query_dense" and query.index is None
    paths = walk.layer_paths(model)
    assert len(paths) == len(set(paths))
    assert "transformer_layer_1/feedforward_output_dense" in paths


def test_duplicate_paths_find_two_copies_of_a_backbone():
    inputs = {
        k: keras.Input((None,), dtype="int32", name=k)
        for k in ("token_ids", "segment_ids", "padding_mask")
    }
    outputs = [
        testing.small_bert_backbone(seed=seed)(inputs)["pooled_output"]
        for seed in (1, 2)
    ]
    model = keras.Model(inputs, keras.layers.Concatenate()(outputs))
    duplicates = walk.duplicate_paths(walk.sites(model))
    assert "transformer_layer_0/self_attention_layer/query" in duplicates
    assert "concatenate" not in duplicates


PATHS = ["a/query", "a/key", "b/query", "a.b", "axb"]


@pytest.mark.parametrize(
    "patterns, expected",
    [
        # An exact path first: "a.b" is not also a regular expression.
        ("a.b", ["a.b"]),
        ("a/query", ["a/query"]),
        # Otherwise a regular expression matching the whole path.
        (r".*query", ["a/query", "b/query"]),
        ("query", []),
        # Several patterns: in the order of the paths, each once.
        ([r"b/.*", r".*query"], ["a/query", "b/query"]),
    ],
)
def test_match_paths_tries_the_exact_path_then_fullmatch(patterns, expected):
    assert matcher.match_paths(PATHS, patterns) == expected


def test_match_selects_each_layer_once():
    model = testing.small_bert_classifier()
    sites = walk.sites(model)
    matched = matcher.match(sites, [r".*/query", r".*layer_0/.*/query"])
    assert [s.path for s in matched] == [
        "transformer_layer_0/self_attention_layer/query",
        "transformer_layer_1/self_attention_layer/query",
    ]


def test_a_bad_regular_expression_is_a_value_error():
    with pytest.raises(ValueError, match=r"Received: pattern='\('"):
        matcher.match_paths(PATHS, "(")


def test_similar_paths_for_error_messages():
    assert matcher.similar_paths(PATHS, "b/querry", n=1) == ["b/query"]
    assert matcher.similar_paths(PATHS, "zzzzzz", n=2) == PATHS[:2]
