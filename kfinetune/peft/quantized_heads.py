"""Gradients through int8 LM heads: the reverse projection of a quantized
`ReversibleEmbedding`."""

import keras
import tensorflow as tf
from keras import ops

from kfinetune import walk


def pass_gradients(model):
    """Gives the int8 LM heads of `model` the gradient of their inputs.

    keras-hub generators project their last hidden states onto the
    vocabulary with the token embedding's reverse projection
    (`ReversibleEmbedding(x, reverse=True)`; the untied
    `reverse_embeddings` of Llama and Mistral, or the tied table). Once
    quantized to int8, Keras computes it by quantizing the hidden states
    too, without the custom gradient its int8 `Dense` and `EinsumDense`
    have: the rounding passes no gradient, so everything below the head
    (every LoRA factor) trains on the gradient of the activation's scale
    alone, which is unrelated to the true one (a relative error of about 1
    on the final norm's gradient of the small test models). This gives the
    projection Keras's own rule for int8 layers: the output is the int8
    one, and the inputs' gradient is that of the dequantized kernel.

    `kfinetune.peft.apply` calls it (also when a saved model is loaded), so
    LoRA over an int8 generator trains on the right gradients. It changes
    how the layer runs, not its weights or config.

    Args:
        model: a Keras model; its int8 `ReversibleEmbedding` layers are
            changed in place.

    Returns:
        The paths of the layers changed.
    """
    changed = []
    for site in walk.sites(model):
        layer = site.layer
        if (
            isinstance(layer, keras.layers.ReversibleEmbedding)
            and layer.quantization_mode == "int8"
            and not _passes_gradients(layer)
        ):
            _set(layer)
            changed.append(site.path)
    return changed


def _passes_gradients(layer):
    return getattr(
        layer.__dict__.get("quantized_call"), "kfinetune_gradients", False
    )


def _set(layer):
    original = layer.quantized_call

    def quantized_call(inputs, reverse=False, **kwargs):
        logits = original(inputs, reverse=reverse, **kwargs)
        if not reverse or layer.quantization_mode != "int8":
            return logits
        if layer.tie_weights:
            kernel = ops.transpose(layer.embeddings)
            scale = layer.embeddings_scale
        else:
            kernel = layer.reverse_embeddings
            scale = layer.reverse_embeddings_scale
        return _straight_through(
            inputs,
            ops.stop_gradient(logits),
            ops.convert_to_tensor(kernel),
            ops.convert_to_tensor(scale),
            getattr(layer, "logit_soft_cap", None),
        )

    quantized_call.kfinetune_gradients = True
    layer.quantized_call = quantized_call


def _straight_through(inputs, logits, kernel, scale, soft_cap):
    # The variables are read outside the custom gradient, as in Keras's own
    # int8 layers: TensorFlow's needs no variable gradients then.
    @ops.custom_gradient
    def project(inputs, logits, kernel, scale):
        def grad_fn(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            if soft_cap is not None:
                # `logits = soft_cap * tanh(z / soft_cap)`.
                capped = ops.divide(ops.cast(logits, upstream.dtype), soft_cap)
                upstream = upstream * (1 - ops.square(capped))
            float_kernel = ops.divide(
                ops.cast(kernel, upstream.dtype),
                ops.cast(scale, upstream.dtype),
            )
            inputs_grad = ops.matmul(upstream, ops.transpose(float_kernel))
            return (ops.cast(inputs_grad, inputs.dtype), None, None, None)

        return tf.identity(logits), grad_fn

    return project(inputs, logits, kernel, scale)
