"""`AdapterConfig`: bottleneck adapters, applied by `kfinetune.peft.apply`."""

from kfinetune import checks
from kfinetune.layers import adapter_wrapper
from kfinetune.peft import config
from kfinetune.peft import injected

# The attention output projection and the feed-forward output layer of each
# block: keras-hub encoders (`self_attention_layer`), GPT-2, BART's decoder,
# Llama, Mistral and Qwen (`self_attention`, `feedforward_output_dense`),
# Gemma (`attention`, `ffw_linear`) and T5 (`output_projector`, in the
# attention layer and in the block).
ATTENTION_OUTPUT = (
    r".*/(self_attention_layer|self_attention|attention)"
    r"/(attention_output|output_projector)"
)
FEEDFORWARD_OUTPUT = (
    r".*/(feedforward_output_dense|ffw_linear)|.*_layer_\d+/output_projector"
)
# For a parallel adapter: the feed-forward output layer's name, and the
# name of a layer beside it that reads the block's input.
_FEEDFORWARD_INPUTS = {
    "feedforward_output_dense": "feedforward_intermediate_dense",
    "ffw_linear": "ffw_gating",
    "output_projector": "input_projector",
}
# The layer norms of keras-hub transformers: `layer_norm` (BERT, GPT-2,
# BART), `layernorm` (Llama, Mistral, Qwen), `pre_ffw_norm` (Gemma).
LAYER_NORMS = r".*(norm|normalization)"
PLACEMENTS = {
    "houlsby": [ATTENTION_OUTPUT, FEEDFORWARD_OUTPUT],
    "pfeiffer": [FEEDFORWARD_OUTPUT],
    "parallel": [FEEDFORWARD_OUTPUT],
}


@config.register
class AdapterConfig(config.PEFTConfig):
    """Bottleneck adapters in keras-hub transformers (encoders, decoders
    and causal LMs).

    Placements:
    - `"houlsby"` (Houlsby et al., 2019): an adapter after the attention
      output projection and one after the feed-forward output, each before
      the residual add and layer norm;
    - `"pfeiffer"` (Pfeiffer et al., 2021): after the feed-forward output
      only;
    - `"parallel"` (He et al., 2022): beside the feed-forward block, reading
      the block's input and adding to its output.

    Each adapter computes `h + W_up·σ(W_down·h)` with `W_up` zero at the
    start, so the model's outputs are unchanged until training moves it.

    Args:
        size: bottleneck width, a positive integer. Defaults to `48`.
        placement: `"houlsby"`, `"pfeiffer"` or `"parallel"`. Defaults to
            `"houlsby"`.
        activation: the adapters' activation. Defaults to `"relu"`.
        init_scale: standard deviation of the down-projections' initial
            weights. Defaults to `1e-2`.
        train_layer_norms: also train the encoders' layer norms, as Houlsby
            et al. did. Defaults to `False`.
        targets: paths or regular expressions of the layers to place
            adapters after. Defaults to the placement's layers in every
            keras-hub `TransformerEncoder`.
        trainable: see `PEFTConfig`.

    Example:

    ```python
    config = kfinetune.peft.AdapterConfig(size=48, placement="houlsby")
    model = kfinetune.peft.apply(model, config, name="sentiment")
    ```
    """

    method = "adapter"

    def __init__(
        self,
        size=48,
        placement="houlsby",
        activation="relu",
        init_scale=1e-2,
        train_layer_norms=False,
        targets=None,
        trainable=None,
    ):
        checks.positive_integer("size", size)
        checks.one_of("placement", placement, PLACEMENTS)
        checks.positive_number("init_scale", init_scale)
        super().__init__(targets=targets, trainable=trainable)
        self.size = size
        self.placement = placement
        self.activation = activation
        self.init_scale = init_scale
        self.train_layer_norms = train_layer_norms

    def default_targets(self, model):
        return list(PLACEMENTS[self.placement])

    def resolved_trainable(self, model):
        patterns = super().resolved_trainable(model)
        if self.train_layer_norms:
            patterns.append(LAYER_NORMS)
        return patterns

    def injections(self, site, name, sites):
        # An adapter goes after everything already wrapped around the layer
        # (a LoRA on the same projection included).
        path = site.path
        site = injected.outermost(site, sites)
        if self.placement != "parallel":
            return [config.Injection(site, self._wrap(site, name))], None
        # The layer's own path: a wrapper's (an IA3 on the feed-forward
        # output) ends in the wrapper's name.
        parent, _, own = path.rpartition("/")
        intermediate = f"{parent}/{_FEEDFORWARD_INPUTS.get(own, own)}"
        taps = [
            injected.outermost(s, sites)
            for s in sites
            if s.path == intermediate and not s.graph_node
        ]
        if intermediate == site.path or not taps:
            return None, (
                "no feed-forward intermediate layer found beside it for a "
                "parallel adapter"
            )
        tap = taps[0]

        def make_tap():
            return adapter_wrapper.ParallelAdapterTap(
                tap.layer, name=f"adapter_{name}_tap"
            )

        return [
            config.Injection(tap, make_tap),
            config.Injection(site, self._wrap(site, name, parallel=True)),
        ], None

    def _wrap(self, site, name, parallel=False):
        def make():
            return adapter_wrapper.AdapterWrapper(
                site.layer,
                size=self.size,
                activation=self.activation,
                init_scale=self.init_scale,
                parallel=parallel,
                name=f"adapter_{name}",
            )

        return make

    def get_config(self):
        return {
            "size": self.size,
            "placement": self.placement,
            "activation": self.activation,
            "init_scale": self.init_scale,
            "train_layer_norms": self.train_layer_norms,
            **super().get_config(),
        }
