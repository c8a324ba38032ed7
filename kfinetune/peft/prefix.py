"""`PrefixConfig`: prefix tuning, applied by `kfinetune.peft.apply`."""

from kfinetune import checks
from kfinetune.layers import prefix_attention
from kfinetune.peft import config
from kfinetune.peft import injected


@config.register
class PrefixConfig(config.PEFTConfig):
    """Prefix tuning (Li and Liang, 2021): learned key/value prefixes in
    every targeted attention layer.

    Each targeted `keras.layers.MultiHeadAttention` (keras-hub BERT-family
    encoders) or `keras_hub.layers.CachedMultiHeadAttention` (keras-hub
    GPT-2-style decoders) is wrapped in a `kfinetune.layers.PrefixAttention`:
    `length` learned keys and values are prepended after the key and value
    projections, and the attention masks (padding and causal) are extended
    so every real token may attend to them while padded positions stay
    masked. Sequence lengths and output shapes do not change. Cached
    generation (`generate()`) works: the cache holds the real tokens and the
    prefix is prepended at each step.

    In keras-hub's Llama, Mistral, Qwen and Gemma decoders the self-attention
    layer of every decoder block is wrapped too; the prefix lives in its
    key/value cache space as in Hugging Face PEFT (`num_key_value_heads`
    heads, keys not rotated), and the layer's own cache code path attends
    over it (see `kfinetune.layers.PrefixAttention`).

    With `reparameterize=True` (Li and Liang's recipe) each prefix is the
    output of a small MLP during training; `kfinetune.peft.merge(model)`
    folds it into plain prefixes for inference and export.

    Args:
        length: prefix positions per attention layer, a positive integer.
        reparameterize: train through an MLP. Defaults to `True`.
        hidden: the MLP's hidden width. Defaults to `512`.
        targets: paths or regular expressions of the attention layers.
            Defaults to every `MultiHeadAttention` in the model (the
            encoders of BERT, ELECTRA, DistilBERT, ALBERT, RoBERTa and
            XLM-RoBERTa), and every Llama, Mistral, Qwen or Gemma
            self-attention layer. DeBERTa-v3's disentangled attention is
            refused: its keys are scored by their relative position to the
            query, which a prefix lacks.
        trainable: see `PEFTConfig`.

    Example:

    ```python
    config = kfinetune.peft.PrefixConfig(length=16)
    model = kfinetune.peft.apply(model, config)
    ```
    """

    method = "prefix"
    # `merge` folds the reparameterisation MLP into plain prefixes, which
    # still need their `PrefixAttention` wrappers.
    mergeable = True

    def __init__(
        self,
        length,
        reparameterize=True,
        hidden=512,
        targets=None,
        trainable=None,
    ):
        checks.positive_integer("length", length)
        checks.positive_integer("hidden", hidden)
        checks.boolean("reparameterize", reparameterize)
        super().__init__(targets=targets, trainable=trainable)
        self.length = length
        self.reparameterize = reparameterize
        self.hidden = hidden

    def default_targets(self, model):
        paths = [
            s.path
            for s in injected.candidates(model)
            if prefix_attention.is_supported(s.layer)
        ]
        if not paths and any(
            prefix_attention.why_not_wrappable(s.layer)
            == prefix_attention.DISENTANGLED
            for s in injected.candidates(model)
        ):
            raise ValueError(
                "Prefix tuning cannot adapt DeBERTa-v3: "
                f"{prefix_attention.DISENTANGLED}. Use LoRA, adapters, IA3 "
                f"or prompt tuning. Received: model={model.name!r} "
                f"({type(model).__name__})"
            )
        if not paths:
            raise ValueError(
                "Prefix tuning needs keras.layers.MultiHeadAttention layers "
                f"(or subclasses), and {model.name!r} has none. Received: "
                f"model={model.name!r} ({type(model).__name__})"
            )
        return paths

    def injections(self, site, name, sites):
        site = injected.outermost(site, sites)
        reason = prefix_attention.why_not_wrappable(site.layer)
        if isinstance(site.layer, prefix_attention.PrefixAttention):
            reason = "already has a prefix"
        if reason:
            return None, reason
        layer = site.layer

        def make():
            return prefix_attention.PrefixAttention(
                layer,
                length=self.length,
                reparameterize=self.reparameterize,
                hidden=self.hidden,
                name=f"prefix_{name}",
            )

        return [config.Injection(site, make)], None

    def get_config(self):
        return {
            "length": self.length,
            "reparameterize": self.reparameterize,
            "hidden": self.hidden,
            **super().get_config(),
        }
