"""Informativeness scores of class probabilities: higher is more useful.

Each function takes NumPy probabilities and returns one score per item,
higher for the items a query should pick first, so that every strategy
ranks the same way.
"""

import numpy as np

UNCERTAINTY = ("least_confidence", "margin", "entropy")
STRATEGIES = ("random", *UNCERTAINTY, "bald", "kcenter")

# Keeps log(0) out of the entropies; p * log(p) -> 0 as p -> 0 anyway.
_TINY = 1e-12


def least_confidence(probabilities):
    """One minus the probability of the predicted class.

    Args:
        probabilities: an array of shape `(items, classes)`.

    Returns:
        A 1-D array of scores in `[0, 1 - 1 / classes]`.

    Example:

    ```python
    kfinetune.active.strategies.least_confidence(np.array([[0.9, 0.1]]))
    # array([0.1])
    ```
    """
    return 1.0 - np.max(probabilities, axis=-1)


def margin(probabilities):
    """One minus the gap between the two most probable classes.

    Args:
        probabilities: an array of shape `(items, classes)`, `classes >= 2`.

    Returns:
        A 1-D array of scores in `[0, 1]`: `1` for a tie at the top.

    Example:

    ```python
    kfinetune.active.strategies.margin(np.array([[0.7, 0.2, 0.1]]))
    # array([0.5])
    ```
    """
    top_two = np.sort(probabilities, axis=-1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def entropy(probabilities):
    """The entropy of the predicted distribution, in nats.

    Args:
        probabilities: an array of shape `(..., classes)`.

    Returns:
        An array of the leading shape, scores in `[0, log(classes)]`.

    Example:

    ```python
    kfinetune.active.strategies.entropy(np.array([[0.5, 0.5]]))
    # array([0.6931...])
    ```
    """
    return -np.sum(probabilities * np.log(probabilities + _TINY), axis=-1)


def bald(pass_probabilities):
    """BALD: the mutual information between prediction and weights.

    Houlsby et al. (2011), with Monte-Carlo dropout as the posterior (Gal
    et al., 2017): the entropy of the mean prediction minus the mean
    entropy of each pass. High when the passes are each confident but
    disagree, which is uncertainty about the model rather than about a
    genuinely ambiguous item.

    Args:
        pass_probabilities: an array of shape `(passes, items, classes)`.

    Returns:
        A 1-D array of scores, non-negative up to rounding.

    Example:

    ```python
    passes = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    kfinetune.active.strategies.bald(passes)  # array([0.6931...])
    ```
    """
    mean = np.mean(pass_probabilities, axis=0)
    return entropy(mean) - np.mean(entropy(pass_probabilities), axis=0)


UNCERTAINTY_SCORES = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
