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
    `kfinetune.layers.LoRA`. The variants PEFT users know are options
    with PEFT's names (see the LoRA variants guide): `use_rslora=True`
    (rsLoRA's scale `alpha / sqrt(rank)`), `use_dora=True` (DoRA's
    magnitude and direction) and `init="gaussian"`, `"pissa"` or
    `"olora"` (PEFT's `init_lora_weights`); LoRA+ is an optimizer
    setting, `kfinetune.optimizers.lora_plus`.

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
        self,
        rank=8,
        alpha=None,
        dropout=0.0,
        use_rslora=False,
        use_dora=False,
        init="default",
        targets=None,
        trainable=None,
    ):
        checks.positive_integer("rank", rank)
        if alpha is not None:
            checks.positive_number("alpha", alpha)
        checks.in_range("dropout", dropout, 0, 1)
        checks.boolean("use_rslora", use_rslora)
        checks.boolean("use_dora", use_dora)
        checks.one_of("init", init, lora.INITS)
        super().__init__(targets=targets, trainable=trainable)
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.use_rslora = use_rslora
        self.use_dora = use_dora
        self.init = init

    @property
    def scale(self):
        """The update's scale: `alpha / rank`, or `alpha / sqrt(rank)`
        with `use_rslora`."""
        alpha = self.rank if self.alpha is None else self.alpha
        return lora.scale_of(alpha, self.rank, self.use_rslora)

    @property
    def variant(self):
        """Whether any option beyond plain LoRA's is set."""
        return self.use_rslora or self.use_dora or self.init != "default"

    def default_targets(self, model):
        # `query_projector`, `value_projector` in T5.
        return [r".*/(query|value)(_projector)?"]

    def injections(self, site, name, sites):
        reason = lora.why_not_wrappable(site.layer)
        enclosing = injected.enclosing(site, sites)
        if any(isinstance(w, ia3.IA3) for w in enclosing):
            # IA3 would scale the kernel when merged, but not the update.
            reason = "already adapted by IA3, which LoRA cannot merge with"
        others = [w for w in enclosing if isinstance(w, lora.LoRA)]
        if others and (self.use_dora or any(w.use_dora for w in others)):
            # DoRA normalises the whole kernel: another LoRA's update,
            # merged or not, would change its norms.
            reason = (
                f"already adapted by LoRA {others[0].name!r}, and DoRA "
                "cannot share a layer with another LoRA"
            )
        if not reason:
            refused = lora.why_not_variant(site.layer, self.use_dora, self.init)
            if refused:
                argument, reason = refused
                base = site.layer
                while isinstance(base, lora.LoRA):
                    base = base.layer
                if getattr(base, "quantization_mode", None):
                    # Refused outright (before anything changes), not
                    # skipped: the whole model would be quantized.
                    value = getattr(self, argument)
                    raise ValueError(
                        f"LoRAConfig cannot adapt {site.path!r}: {reason}. "
                        f"Received: {argument}={value!r}"
                    )
        if reason:
            return None, reason

        def make():
            return lora.LoRA(
                site.layer,
                rank=self.rank,
                alpha=self.alpha,
                dropout=self.dropout,
                use_rslora=self.use_rslora,
                use_dora=self.use_dora,
                init=self.init,
                name=f"lora_{name}",
            )

        # A node of a graph that cannot be rebuilt (the pooler of a
        # keras-hub backbone, a keras-hub task's head) is replaced in place.
        rewire = site.graph_node and not compat.is_rebuildable(site.parent)
        return [config.Injection(site, make, rewire=rewire)], None

    def get_config(self):
        # The variant options only when set: a plain LoRA's config (and
        # so its adapter file) reads in kfinetune versions without them.
        variant = {
            key: value
            for key, value, default in (
                ("use_rslora", self.use_rslora, False),
                ("use_dora", self.use_dora, False),
                ("init", self.init, "default"),
            )
            if value != default
        }
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout,
            **variant,
            **super().get_config(),
        }
