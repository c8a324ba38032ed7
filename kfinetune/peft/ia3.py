"""`IA3Config`: learned rescaling vectors, applied by `kfinetune.peft.apply`."""

import re

from kfinetune.layers import ia3
from kfinetune.layers import lora
from kfinetune.peft import config
from kfinetune.peft import injected

# The second feed-forward layer of keras-hub blocks (`ffw_linear` in Gemma).
FEEDFORWARD = (
    r".*(feedforward_output_dense|ffw_linear)|.*_layer_\d+/output_projector"
)


@config.register
class IA3Config(config.PEFTConfig):
    """IA3 (Liu et al., 2022): learned vectors, initialised to ones, that
    rescale the attention keys and values and the feed-forward
    intermediate activation. Mergeable into the base weights like LoRA.

    Args:
        targets: paths or regular expressions of the layers to adapt.
            Defaults to the attention `key` and `value` projections and the
            feed-forward output layer of keras-hub transformers.
        feedforward: pattern of the targets whose *input* is scaled (the
            second layer of a feed-forward block: scaling its input scales
            the intermediate activation); every other target's output is
            scaled. Defaults to the feed-forward output layers of keras-hub
            blocks (`feedforward_output_dense`, Gemma's `ffw_linear`, T5's
            block `output_projector`).
        trainable: see `PEFTConfig`.

    Example:

    ```python
    model = kfinetune.peft.apply(model, kfinetune.peft.IA3Config())
    ```
    """

    method = "ia3"
    mergeable = True
    folds_into_base = True

    def __init__(self, targets=None, feedforward=FEEDFORWARD, trainable=None):
        if not isinstance(feedforward, str):
            raise ValueError(
                "`feedforward` must be a regular expression. "
                f"Received: feedforward={feedforward!r}"
            )
        super().__init__(targets=targets, trainable=trainable)
        self.feedforward = feedforward

    def default_targets(self, model):
        return [r".*/(key|value)(_projector)?", FEEDFORWARD]

    def injections(self, site, name, sites):
        site = injected.outermost(site, sites)
        layer = site.layer
        if isinstance(layer, lora.LoRA):
            return None, "already adapted by LoRA, which IA3 cannot merge with"
        if not isinstance(layer, ia3.SUPPORTED):
            return None, f"{type(layer).__name__} is not Dense or EinsumDense"
        mode = getattr(layer, "quantization_mode", None)
        if mode:
            # IA3 scales the kernel when merged, which an integer kernel
            # cannot hold without re-quantizing.
            return None, f"quantized ({mode}); IA3 needs a float kernel"
        position = (
            "input" if re.fullmatch(self.feedforward, site.path) else "output"
        )

        def make():
            return ia3.IA3(layer, position=position, name=f"ia3_{name}")

        return [config.Injection(site, make)], None

    def get_config(self):
        return {"feedforward": self.feedforward, **super().get_config()}
