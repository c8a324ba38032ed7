"""`attributions`: how much each word piece (and word) of a text pushed the
model towards a class, by integrated gradients or gradient × input over the
token embeddings."""

import dataclasses
import html

import keras
import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune import compat
from kfinetune import plotting
from kfinetune.inspect import inputs as inputs_lib

METHODS = ("integrated_gradients", "gradient_x_input")
BASELINES = ("zeros", "pad")


@dataclasses.dataclass(frozen=True)
class Attribution:
    """The attributions of one text.

    Attributes:
        tokens: the word pieces (padding left out).
        scores: one float per word piece: its share of
            `output - baseline_output`.
        words: `(word, score)` pairs: word pieces joined into words (their
            scores summed), special tokens such as `[CLS]` left out.
        target: the class explained.
        output: the model's output for `target` on the text.
        baseline_output: its output on the baseline.
        method: `"integrated_gradients"` or `"gradient_x_input"`.
    """

    tokens: tuple
    scores: np.ndarray
    words: tuple
    target: int
    output: float
    baseline_output: float
    method: str

    @property
    def delta(self):
        """How far the scores' sum is from `output - baseline_output`
        (integrated gradients' completeness error)."""
        return float(np.sum(self.scores) - (self.output - self.baseline_output))

    def to_html(self, class_name=None):
        """The words as an HTML fragment, highlighted green where they
        push towards the target class and red where they push away.

        Args:
            class_name: the target's name shown in the tooltip. Defaults to
                `None` (its index).

        Returns:
            A string holding one `<p>` element.
        """
        name = html.escape(
            str(self.target if class_name is None else class_name)
        )
        peak = max((abs(s) for _, s in self.words), default=0.0) or 1.0
        spans = []
        for word, score in self.words:
            alpha = min(abs(score) / peak, 1.0)
            color = "0, 160, 0" if score >= 0 else "220, 0, 0"
            spans.append(
                f'<span style="background-color: rgba({color}, '
                f'{alpha:.2f}); padding: 0 2px" title="{score:+.3f} '
                f'towards {name}">{html.escape(word)}</span>'
            )
        return f"<p>{' '.join(spans)}</p>"

    def plot(self, path, class_name=None, dpi=120):
        """Draws the highlighted words as a PNG; see `plot_attributions`."""
        return plot_attributions([self], path, [class_name], dpi=dpi)


def attributions(
    model,
    texts,
    method="integrated_gradients",
    steps=50,
    baseline="pad",
    target=None,
    tokenizer=None,
):
    """Attributes a classifier's output to the word pieces of its input.

    Both methods work on the token embeddings `x` (position and segment
    embeddings are left as they are) against a baseline `x'`, and give
    each word piece the sum over its embedding of:

    - `"integrated_gradients"` (Sundararajan et al., 2017):
      `(x - x') * mean over α of ∂f/∂x at x' + α (x - x')`, α from 0 to 1
      in `steps` intervals (trapezoid rule). The scores sum to
      `f(x) - f(x')` (completeness) up to the integration error, which
      shrinks with `steps`; `Attribution.delta` reports it.
    - `"gradient_x_input"`: `(x - x') * ∂f/∂x` at `x`, one gradient; with
      `baseline="zeros"` this is the classic gradient × input. Cheaper, a
      first-order estimate of the same difference.

    `f` is the model's output for the target class (the logit for a
    keras-hub `TextClassifier`). Padding is left out, and the baseline
    equals the input there. Dropout is off.

    Args:
        model: a keras-hub task (e.g. a `TextClassifier`), PEFT methods
            applied or not.
        texts: a list of strings, which the model's preprocessor turns into
            inputs; or, for a model without a preprocessor, the dict of
            preprocessed inputs (`token_ids`, `padding_mask`, ...).
        method: `"integrated_gradients"` or `"gradient_x_input"`.
            Defaults to `"integrated_gradients"`.
        steps: integration intervals of integrated gradients, a positive
            integer; the model runs `steps + 1` times. Defaults to `50`.
        baseline: `"pad"` (the embedding of the padding token at every
            position, the special tokens included) or `"zeros"` (zero
            token embeddings). Defaults to `"pad"`.
        target: the class to explain: an integer, one integer per text, or
            `None` for each text's predicted class. Defaults to `None`.
        tokenizer: the keras-hub tokenizer naming the word pieces.
            Defaults to `None`: the preprocessor's tokenizer, or the token
            ids as text when there is no preprocessor.

    Returns:
        A list with one `Attribution` per text.

    Raises:
        ValueError: an argument is out of range, or `texts` is neither
            strings (with a preprocessor) nor preprocessed inputs.

    Example:

    ```python
    found = kfinetune.inspect.attributions(model, ["what a great day"])
    found[0].words  # [('what', 0.02), ('a', -0.01), ('great', 1.3), ...]
    html = found[0].to_html()
    kfinetune.inspect.plot_attributions(found, "attributions.png")
    ```
    """
    checks.one_of("method", method, METHODS)
    checks.positive_integer("steps", steps)
    checks.one_of("baseline", baseline, BASELINES)
    backbone = inputs_lib.backbone_of(model, "attributions")
    x, tokenizer = inputs_lib.prepare(model, texts, tokenizer, "attributions")
    rows = len(x["token_ids"])
    targets = _targets(target, rows)
    model_inputs = {k: x[k] for k in backbone.input if k in x}
    padding = x["padding_mask"].astype(bool)

    embedding = backbone.token_embedding
    real = tf.constant(embedding(x["token_ids"]), dtype="float32")
    if baseline == "zeros":
        base = tf.zeros_like(real)
    else:
        pad_id = getattr(tokenizer, "pad_token_id", None) or 0
        base = tf.constant(
            embedding(np.full_like(x["token_ids"], pad_id)), dtype="float32"
        )
    # The baseline equals the input at padded positions.
    base = tf.where(padding[..., None], base, real)
    diff = real - base

    if targets is None:
        predicted = model(model_inputs, training=False)
        targets = np.argmax(keras.ops.convert_to_numpy(predicted), -1)
    fixed = tf.constant(np.asarray(targets), dtype="int32")

    def pick(embedded):
        """The target outputs with these token embeddings, and their
        gradient with respect to them."""
        with tf.GradientTape() as tape:
            tape.watch(embedded)
            with compat.recording_call(embedding, _returning(embedded)):
                out = tf.cast(model(model_inputs, training=False), "float32")
            picked = tf.gather(out, fixed, axis=1, batch_dims=1)
        return picked.numpy(), tape.gradient(picked, embedded)

    outputs, gradient = pick(real)
    baseline_outputs = pick(base)[0]
    if method == "gradient_x_input":
        total = gradient
    else:
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] = 0.5 / steps
        total = tf.zeros_like(real)
        for alpha, weight in zip(alphas, weights, strict=True):
            if alpha == 1.0:
                grad = gradient
            else:
                grad = pick(base + float(alpha) * diff)[1]
            total += float(weight) * grad
    scores = tf.reduce_sum(diff * total, axis=-1).numpy()
    special = inputs_lib.special_tokens(tokenizer)
    found = []
    for row in range(rows):
        keep = np.flatnonzero(padding[row])
        tokens = inputs_lib.token_names(x["token_ids"][row][keep], tokenizer)
        row_scores = scores[row][keep].astype("float32")
        found.append(
            Attribution(
                tokens=tuple(tokens),
                scores=row_scores,
                words=tuple(inputs_lib.words(tokens, row_scores, special)),
                target=int(targets[row]),
                output=float(outputs[row]),
                baseline_output=float(baseline_outputs[row]),
                method=method,
            )
        )
    return found


def _returning(embedded):
    """A `call` for the token embedding layer that returns `embedded`."""

    def call(original, inputs, *args, **kwargs):
        if args or kwargs.get("reverse"):
            return original(inputs, *args, **kwargs)
        return keras.ops.cast(embedded, original.__self__.compute_dtype)

    return call


def _targets(target, rows):
    if target is None:
        return None
    if isinstance(target, int | np.integer):
        values = [int(target)] * rows
    else:
        values = list(target)
        if len(values) != rows or not all(
            isinstance(v, int | np.integer) for v in values
        ):
            raise ValueError(
                "`target` must be None, an integer or one integer per text "
                f"({rows}). Received: target={target!r}"
            )
    if any(v < 0 for v in values):
        raise ValueError(
            f"`target` must be non-negative. Received: target={target!r}"
        )
    return [int(v) for v in values]


def plot_attributions(found, path, class_names=None, dpi=120):
    """Draws texts as highlighted words in a PNG, one line per text.

    Args:
        found: a list of `Attribution`s (from `attributions`).
        path: the PNG file to write; its folder is created when missing.
        class_names: one name per text for its target class, shown in
            front of it, or `None` for the class indices. Defaults to
            `None`.
        dpi: the resolution. Defaults to `120`.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `found` is empty or `class_names` has the wrong length.

    Example:

    ```python
    found = kfinetune.inspect.attributions(model, texts)
    kfinetune.inspect.plot_attributions(found, "attributions.png")
    ```
    """
    found = list(found)
    if not found:
        raise ValueError(
            f"`found` must hold at least one Attribution. Received: "
            f"found={found!r}"
        )
    if class_names is None:
        class_names = [None] * len(found)
    if len(class_names) != len(found):
        raise ValueError(
            f"`class_names` needs one name per attribution ({len(found)}). "
            f"Received: class_names={class_names!r}"
        )
    figure = plotting.new_figure(8.0, 0.45 * len(found) + 0.5)
    renderer = figure.canvas.get_renderer()
    width = figure.bbox.width
    line = 1.0 / (len(found) + 1)
    for index, (item, name) in enumerate(zip(found, class_names, strict=True)):
        y = 1.0 - line * (index + 1)
        label = item.target if name is None else name
        text = figure.text(0.01, y, f"{label}:", weight="bold", va="center")
        x = 0.01 + text.get_window_extent(renderer).width / width + 0.01
        peak = max((abs(s) for _, s in item.words), default=0.0) or 1.0
        for word, score in item.words:
            alpha = min(abs(score) / peak, 1.0)
            color = (0.0, 0.63, 0.0) if score >= 0 else (0.86, 0.0, 0.0)
            text = figure.text(
                x,
                y,
                word,
                va="center",
                bbox={
                    "facecolor": (*color, alpha),
                    "edgecolor": "none",
                    "pad": 1.5,
                },
            )
            x += text.get_window_extent(renderer).width / width + 0.008
    return plotting.save(figure, path, dpi)
