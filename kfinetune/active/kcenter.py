"""`kcenter_greedy`: a diverse subset of points by greedy k-center."""

import numpy as np

from kfinetune import checks


def kcenter_greedy(embeddings, n, centers=(), candidates=None, seed=0):
    """Picks `n` points, each the farthest from every point picked so far.

    The greedy 2-approximation of the k-center problem, used for active
    learning as the core-set approach (Sener & Savarese, 2018): the picked
    points together with the `centers` cover the candidates with the
    smallest radius the greedy rule finds. Each pick's score is its
    Euclidean distance to the nearest center at the time it was picked, so
    scores decrease along the selection. With no `centers`, the first pick
    is drawn at random with `seed` and scores `inf`.

    Args:
        embeddings: an array of shape `(points, dimensions)`.
        n: the number of points to pick, at most the number of candidates.
        centers: indices of points already chosen (e.g. the labelled
            items), never picked again. Defaults to `()`.
        candidates: indices of the points that may be picked. Defaults to
            every point not in `centers`.
        seed: the seed of the first pick when `centers` is empty.
            Defaults to `0`.

    Returns:
        `(indices, scores)`: two 1-D arrays of length `n`, in pick order.

    Raises:
        ValueError: if `embeddings` is not 2-D, `centers` or `candidates`
            hold anything but indices of its points, or `n` is not a
            positive integer of at most the number of candidates.

    Example:

    ```python
    points = np.array([[0.0], [0.1], [5.0], [10.0]])
    kfinetune.active.kcenter_greedy(points, 2, centers=[0])
    # (array([3, 2]), array([10., 5.]))
    ```
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(
            "`embeddings` must have shape (points, dimensions). "
            f"Received: embeddings with shape {embeddings.shape}"
        )
    centers = _check_indices("centers", centers, len(embeddings))
    if candidates is None:
        candidates = np.setdiff1d(np.arange(len(embeddings)), centers)
    candidates = _check_indices("candidates", candidates, len(embeddings))
    checks.in_range("n", n, 1, len(candidates), high_closed=True, integer=True)
    points = embeddings[candidates]
    nearest = np.full(len(candidates), np.inf)
    # Distances to the centers in chunks keep memory at chunk x candidates.
    for start in range(0, len(centers), 256):
        chunk = embeddings[centers[start : start + 256]]
        distances = _distances(points, chunk)
        nearest = np.minimum(nearest, distances.min(axis=1))
    picked = np.empty(n, dtype=np.int64)
    scores = np.empty(n)
    for step in range(n):
        if step == 0 and not len(centers):
            position = int(np.random.default_rng(seed).integers(len(points)))
        else:
            position = int(np.argmax(nearest))
        picked[step] = candidates[position]
        scores[step] = nearest[position]
        nearest = np.minimum(
            nearest, _distances(points, points[position][None])[:, 0]
        )
        # Distance 0 to itself: never picked twice, even among duplicates.
        nearest[position] = -1.0
    return picked, scores


def _check_indices(name, indices, count):
    values = np.asarray(indices).reshape(-1)
    if values.size and (
        not np.issubdtype(values.dtype, np.integer)
        or values.min() < 0
        or values.max() >= count
    ):
        raise ValueError(
            f"`{name}` must hold integer indices of the {count} points. "
            f"Received: {name}={indices!r}"
        )
    return values.astype(np.int64)


def _distances(points, others):
    squared = (
        np.sum(points**2, axis=1)[:, None]
        - 2.0 * points @ others.T
        + np.sum(others**2, axis=1)[None, :]
    )
    return np.sqrt(np.maximum(squared, 0.0))
