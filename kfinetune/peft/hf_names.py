"""PyTorch module names and keras-hub layer paths of the same weights, per
architecture, for `kfinetune.peft.load_hf` and `save_hf`.

Each `Family` pairs templates such as `"layers.{i}.self_attn.q_proj"`
(a module of Hugging Face's PyTorch base model, e.g. `LlamaModel`) with
keras-hub paths such as `"transformer_layer_{i}/self_attention/query"`,
as keras-hub's own converters (`keras_hub/src/utils/transformers/`) port
the weights. A field that only the keras-hub side has (`{qkv}` in GPT-2)
marks a fused PyTorch module whose output keras-hub splits into several
layers: GPT-2's `c_attn` is `[query; key; value]`.

Example:

```python
family = kfinetune.peft.hf_names.family_of(model.backbone)
family.keras_paths("model.layers.0.self_attn.q_proj", task=True)
# ['transformer_layer_0/self_attention/query']
```
"""

import dataclasses
import re

import keras_hub

_FIELDS = {"i": r"\d+", "g": r"\d+", "j": r"\d+", "qkv": "query|key|value"}
# The keras-hub layers of a fused PyTorch module, in the order of its
# output features.
_SPLITS = {"qkv": ("query", "key", "value")}


@dataclasses.dataclass(frozen=True)
class Family:
    """One architecture's PyTorch module names and keras-hub layer paths.

    Attributes:
        name: the architecture, e.g. `"GPT-2"`.
        backbone: the keras-hub backbone class (subclasses count too:
            keras-hub loads a Hugging Face Llama as `Llama3Backbone`).
        modules: `(torch, keras)` template pairs of the backbone's
            modules; the PyTorch names are relative to the base model
            (`BertModel`, `LlamaModel`, `GPT2Model`).
        task_prefix: the base model's name inside the PyTorch task model
            (`"bert."` in `BertForSequenceClassification`).
        task_type: PEFT's `task_type` for the keras-hub task.
        head_modules: `(torch, keras)` template pairs of the task's own
            layers, which PEFT keeps as `modules_to_save`. Defaults to
            none.
        tasks: whether keras-hub tasks of the family take adapters of
            the PyTorch task model. `False` where keras-hub has no task
            whose head is PyTorch's (ELECTRA), so that an adapter could
            not hold it: only the backbone then takes (base-model)
            adapters. Defaults to `True`.
        conv1d: whether the PyTorch projections are `Conv1D`, whose
            weights are `(in, out)`; PEFT then records
            `fan_in_fan_out: true`. Their LoRA factors are PyTorch's usual
            `(rank, in)` and `(out, rank)` all the same. Defaults to
            `False`.
    """

    name: str
    backbone: type
    modules: tuple
    task_prefix: str
    task_type: str
    head_modules: tuple = ()
    tasks: bool = True
    conv1d: bool = False

    def keras_paths(self, module, task):
        """The keras-hub paths holding PyTorch `module`'s weight, in the
        order of its output features (several for a fused module), or
        `None` when it has no counterpart.

        Args:
            module: a PyTorch module name, without PEFT's prefix.
            task: whether the names are those of the task model (with
                `task_prefix`) rather than of the base model.
        """
        if task:
            found = _expand(module, self.head_modules)
            if found is not None:
                return found
            if not module.startswith(self.task_prefix):
                return None
            module = module[len(self.task_prefix) :]
        return _expand(module, self.modules)

    def torch_module(self, path, task):
        """The PyTorch module holding keras-hub `path`'s weight, or `None`.

        Returns:
            `(module, paths)`: the module's name and the keras-hub paths of
            all of its parts, `path` among them (see `keras_paths`).
        """
        for pairs, prefix in (
            (self.head_modules if task else (), ""),
            (self.modules, self.task_prefix if task else ""),
        ):
            for torch_template, keras_template in pairs:
                match = re.fullmatch(_regex(keras_template), path)
                if match:
                    module = prefix + torch_template.format(**match.groupdict())
                    return module, self.keras_paths(module, task)
        return None

    def is_head(self, path):
        """Whether `path` is one of the task's own layers."""
        return any(
            re.fullmatch(_regex(keras), path) for _, keras in self.head_modules
        )


def _regex(template):
    """A regular expression matching `template`'s names, one named group
    per `{field}`."""
    parts = re.split(r"\{(\w+)\}", template)
    return "".join(
        f"(?P<{part}>{_FIELDS[part]})" if i % 2 else re.escape(part)
        for i, part in enumerate(parts)
    )


def _expand(module, pairs):
    for torch_template, keras_template in pairs:
        match = re.fullmatch(_regex(torch_template), module)
        if match:
            fields = match.groupdict()
            split = [
                f
                for f in re.findall(r"\{(\w+)\}", keras_template)
                if f not in fields
            ]
            if not split:
                return [keras_template.format(**fields)]
            (field,) = split
            return [
                keras_template.format(**fields, **{field: part})
                for part in _SPLITS[field]
            ]
    return None


BERT = Family(
    name="BERT",
    backbone=keras_hub.models.BertBackbone,
    modules=(
        (
            "encoder.layer.{i}.attention.self.{qkv}",
            "transformer_layer_{i}/self_attention_layer/{qkv}",
        ),
        (
            "encoder.layer.{i}.attention.output.dense",
            "transformer_layer_{i}/self_attention_layer/attention_output",
        ),
        (
            "encoder.layer.{i}.intermediate.dense",
            "transformer_layer_{i}/feedforward_intermediate_dense",
        ),
        (
            "encoder.layer.{i}.output.dense",
            "transformer_layer_{i}/feedforward_output_dense",
        ),
        ("pooler.dense", "pooled_dense"),
        ("embeddings.word_embeddings", "token_embedding"),
    ),
    task_prefix="bert.",
    task_type="SEQ_CLS",
    head_modules=(("classifier", "logits"),),
)
LLAMA = Family(
    name="Llama",
    backbone=keras_hub.models.LlamaBackbone,
    modules=tuple(
        (f"layers.{{i}}.{torch}", f"transformer_layer_{{i}}/{keras}")
        for torch, keras in (
            ("self_attn.q_proj", "self_attention/query"),
            ("self_attn.k_proj", "self_attention/key"),
            ("self_attn.v_proj", "self_attention/value"),
            ("self_attn.o_proj", "self_attention/attention_output"),
            ("mlp.gate_proj", "feedforward_gate_dense"),
            ("mlp.up_proj", "feedforward_intermediate_dense"),
            ("mlp.down_proj", "feedforward_output_dense"),
        )
    ),
    task_prefix="model.",
    task_type="CAUSAL_LM",
)
GPT2 = Family(
    name="GPT-2",
    backbone=keras_hub.models.GPT2Backbone,
    modules=tuple(
        (f"h.{{i}}.{torch}", f"transformer_layer_{{i}}/{keras}")
        for torch, keras in (
            ("attn.c_attn", "self_attention/{qkv}"),
            ("attn.c_proj", "self_attention/attention_output"),
            ("mlp.c_fc", "feedforward_intermediate_dense"),
            ("mlp.c_proj", "feedforward_output_dense"),
        )
    ),
    task_prefix="transformer.",
    task_type="CAUSAL_LM",
    conv1d=True,
)


def _bert_like(keras_layer, attention, attention_output, intermediate, output):
    """The `(torch, keras)` pairs of a BERT-like layer's projections:
    `attention` pairs each PyTorch projection with its keras-hub layer."""
    return (
        *(
            (torch, f"{keras_layer}/self_attention_layer/{keras}")
            for torch, keras in attention
        ),
        (
            attention_output,
            f"{keras_layer}/self_attention_layer/attention_output",
        ),
        (intermediate, f"{keras_layer}/feedforward_intermediate_dense"),
        (output, f"{keras_layer}/feedforward_output_dense"),
    )


_BERT_LAYER = _bert_like(
    "transformer_layer_{i}",
    (("encoder.layer.{i}.attention.self.{qkv}", "{qkv}"),),
    "encoder.layer.{i}.attention.output.dense",
    "encoder.layer.{i}.intermediate.dense",
    "encoder.layer.{i}.output.dense",
)
# The heads of keras-hub's text classifiers are PyTorch's sequence
# classification heads, layer for layer (the same activations: tanh for
# RoBERTa, ReLU for DistilBERT, exact GELU for DeBERTa's pooler). keras-hub
# has no ELECTRA classifier, so ELECTRA takes base-model adapters only.
# XLM-RoBERTa before RoBERTa: keras-hub's `XLMRobertaBackbone` subclasses
# `RobertaBackbone`; both keep the base model as `roberta`.
XLM_ROBERTA = Family(
    name="XLM-RoBERTa",
    backbone=keras_hub.models.XLMRobertaBackbone,
    modules=(
        *_BERT_LAYER,
        ("embeddings.word_embeddings", "embeddings/token_embedding"),
    ),
    task_prefix="roberta.",
    task_type="SEQ_CLS",
    head_modules=(
        ("classifier.dense", "pooled_dense"),
        ("classifier.out_proj", "logits"),
    ),
)
ROBERTA = dataclasses.replace(
    XLM_ROBERTA, name="RoBERTa", backbone=keras_hub.models.RobertaBackbone
)
DISTILBERT = Family(
    name="DistilBERT",
    backbone=keras_hub.models.DistilBertBackbone,
    modules=(
        *_bert_like(
            "transformer_layer_{i}",
            (
                ("transformer.layer.{i}.attention.q_lin", "query"),
                ("transformer.layer.{i}.attention.k_lin", "key"),
                ("transformer.layer.{i}.attention.v_lin", "value"),
            ),
            "transformer.layer.{i}.attention.out_lin",
            "transformer.layer.{i}.ffn.lin1",
            "transformer.layer.{i}.ffn.lin2",
        ),
        (
            "embeddings.word_embeddings",
            "token_and_position_embedding/token_embedding",
        ),
    ),
    task_prefix="distilbert.",
    task_type="SEQ_CLS",
    head_modules=(("pre_classifier", "pooled_dense"), ("classifier", "logits")),
)
# ALBERT shares its layers across depth: PyTorch names them by group and
# place in the group, as keras-hub does.
_ALBERT_LAYER = "encoder.albert_layer_groups.{g}.albert_layers.{j}"
ALBERT = Family(
    name="ALBERT",
    backbone=keras_hub.models.AlbertBackbone,
    modules=(
        *_bert_like(
            "group_{g}_inner_layer_{j}",
            ((f"{_ALBERT_LAYER}.attention.{{qkv}}", "{qkv}"),),
            f"{_ALBERT_LAYER}.attention.dense",
            f"{_ALBERT_LAYER}.ffn",
            f"{_ALBERT_LAYER}.ffn_output",
        ),
        ("encoder.embedding_hidden_mapping_in", "embedding_projection"),
        ("pooler", "pooled_dense"),
        ("embeddings.word_embeddings", "token_embedding"),
    ),
    task_prefix="albert.",
    task_type="SEQ_CLS",
    head_modules=(("classifier", "logits"),),
)
ELECTRA = Family(
    name="ELECTRA",
    backbone=keras_hub.models.ElectraBackbone,
    modules=(
        *_BERT_LAYER,
        ("embeddings_project", "embeddings_projection"),
        ("embeddings.word_embeddings", "token_embedding"),
    ),
    task_prefix="electra.",
    tasks=False,
    task_type="SEQ_CLS",
)
DEBERTA_V3 = Family(
    name="DeBERTa-v3",
    backbone=keras_hub.models.DebertaV3Backbone,
    modules=(
        *_bert_like(
            "disentangled_attention_encoder_layer_{i}",
            (
                ("encoder.layer.{i}.attention.self.query_proj", "query"),
                ("encoder.layer.{i}.attention.self.key_proj", "key"),
                ("encoder.layer.{i}.attention.self.value_proj", "value"),
            ),
            "encoder.layer.{i}.attention.output.dense",
            "encoder.layer.{i}.intermediate.dense",
            "encoder.layer.{i}.output.dense",
        ),
        ("embeddings.word_embeddings", "token_embedding"),
    ),
    task_prefix="deberta.",
    task_type="SEQ_CLS",
    head_modules=(("pooler.dense", "pooled_dense"), ("classifier", "logits")),
)
FAMILIES = (
    BERT,
    XLM_ROBERTA,
    ROBERTA,
    DISTILBERT,
    ALBERT,
    ELECTRA,
    DEBERTA_V3,
    LLAMA,
    GPT2,
)


def family_of(backbone):
    """The `Family` of a keras-hub backbone, or `None`."""
    for family in FAMILIES:
        if isinstance(backbone, family.backbone):
            return family
    return None


def guess(module):
    """The `Family` whose PyTorch names (of a task or base model) include
    `module`, or `None`: says for which architecture an adapter was
    made."""
    for family in FAMILIES:
        if any(family.keras_paths(module, task) for task in (True, False)):
            return family
    return None
