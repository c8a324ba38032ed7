"""`LoRAConfig`: low-rank adaptation, applied by `kfinetune.peft.apply`."""

from kfinetune import checks
from kfinetune import compat
from kfinetune.layers import ia3
from kfinetune.layers import lora
from kfinetune.peft import config
from kfinetune.peft import injected

# Every dense layer of a keras-hub transformer block: the attention's
# query, key, value and output projections (self- and cross-attention) and
# the feed-forward layers, gated ones included (`feedforward_gate_dense` in
# Llama, Mistral and Qwen, `ffw_gating`, `ffw_gating_2` and `ffw_linear` in
# Gemma; T5's `*_projector`): what PEFT's `target_modules="all-linear"`
# picks.
ALL_LINEAR = (
    r".*/(query|key|value|attention_output"
    r"|feedforward_(intermediate|gate|output)_dense"
    r"|ffw_(gating|gating_2|linear)"
    r"|(query|key|value|output|input|gate)_projector)"
)


@config.register
class LoRAConfig(config.PEFTConfig):
    """Low-rank adaptation (Hu et al., 2021) of Dense, EinsumDense and
    Embedding layers.

    Each target layer `W` computes `x·W + (alpha / rank)·dropout(x)·A·B`
    with `A` (d_in × rank) and `B` (rank × d_out, zero at the start). See
    `kfinetune.layers.LoRA`.

    Args:
        rank: rank of the update, a positive integer no larger than any
            target's `min(d_in, d_out)`. Defaults to `8`.
        alpha: the update is scaled by `alpha / rank`. Defaults to `rank`.
        dropout: dropout on the input of the low-rank path, in `[0, 1)`.
            Defaults to `0.0`.
        targets: layer paths or regular expressions of the layers to adapt.
            Defaults to the attention query and value projections of
            keras-hub transformers (`r".*/(query|value)(_projector)?"`), as
            in the LoRA
            paper; `[kfinetune.peft.ALL_LINEAR]` adapts every dense layer
            of each transformer block, which token tasks need (see the
            sequence-labelling guide).
        trainable: see `PEFTConfig`.

    Example:

    ```python
    config = kfinetune.peft.LoRAConfig(rank=8, alpha=16)
    model = kfinetune.peft.apply(model, config)
    ```
    """

    method = "lora"
    mergeable = True
    folds_into_base = True

    def __init__(
        self, rank=8, alpha=None, dropout=0.0, targets=None, trainable=None
    ):
        checks.positive_integer("rank", rank)
        if alpha is not None:
            checks.positive_number("alpha", alpha)
        checks.in_range("dropout", dropout, 0, 1)
        super().__init__(targets=targets, trainable=trainable)
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout

    def default_targets(self, model):
        # `query_projector`, `value_projector` in T5.
        return [r".*/(query|value)(_projector)?"]

    def injections(self, site, name, sites):
        reason = lora.why_not_wrappable(site.layer)
        if any(isinstance(w, ia3.IA3) for w in injected.enclosing(site, sites)):
            # IA3 would scale the kernel when merged, but not the update.
            reason = "already adapted by IA3, which LoRA cannot merge with"
        if reason:
            return None, reason

        def make():
            return lora.LoRA(
                site.layer,
                rank=self.rank,
                alpha=self.alpha,
                dropout=self.dropout,
                name=f"lora_{name}",
            )

        # A node of a graph that cannot be rebuilt (the pooler of a
        # keras-hub backbone, a keras-hub task's head) is replaced in place.
        rewire = site.graph_node and not compat.is_rebuildable(site.parent)
        return [config.Injection(site, make, rewire=rewire)], None

    def get_config(self):
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout,
            **super().get_config(),
        }
