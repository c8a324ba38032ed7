"""`iterative_partition`: disjoint parts of multi-label examples that keep
each class's share, with exact part sizes."""

import numpy as np


def _pick(rng, candidates, *keys):
    """The candidate with the largest first key, ties broken by the next
    keys, then at random."""
    for key in keys:
        candidates = candidates[key[candidates] == key[candidates].max()]
    return int(rng.choice(candidates))


def iterative_partition(labels, sizes, seed):
    """Splits multi-label examples into parts of exact sizes, stratified.

    Iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011):
    the class with the fewest examples still to place goes first, each of
    its examples to the part that most lacks that class (ties: the part
    with the most room left, then at random), so rare classes are spread
    before common ones fill the parts. Unlike the paper's, a part never
    takes more than its size, so the sizes are exact. Examples with no
    class go last, each to the part with the most room left.

    Args:
        labels: a `(n, num_classes)` multi-hot array of 0 and 1.
        sizes: the number of examples of each part; they add up to `n`.
        seed: a non-negative integer; the same seed gives the same parts.

    Returns:
        A list of 1-D arrays of indices into `labels`, one per part, each
        in a seeded random order.

    Raises:
        ValueError: if `sizes` do not add up to the number of examples.

    Example:

    ```python
    test, validation, train = (
        kfinetune.data.iterative_stratification.iterative_partition(
            texts.labels, [10, 10, 80], seed=0))
    ```
    """
    labels = np.asarray(labels, dtype=bool)
    wanted = np.asarray(sizes, dtype=np.int64)
    if wanted.sum() != len(labels) or np.any(wanted < 0):
        raise ValueError(
            f"`sizes` must be non-negative and add up to the {len(labels)} "
            f"examples. Received: sizes={wanted.tolist()}"
        )
    rng = np.random.default_rng(seed)
    room = wanted.astype(np.float64)
    # How many examples of each class each part still lacks.
    lacking = np.outer(wanted / max(len(labels), 1), labels.sum(axis=0))
    part_of = np.full(len(labels), -1)
    parts = np.arange(len(wanted))
    while True:
        left = part_of < 0
        counts = labels[left].sum(axis=0)
        if not counts.any():
            break
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = int(rng.choice(rarest))
        for index in rng.permutation(np.flatnonzero(left & labels[:, label])):
            part = _pick(rng, parts[room > 0], lacking[:, label], room)
            part_of[index] = part
            room[part] -= 1
            lacking[part] -= labels[index]
    for index in rng.permutation(np.flatnonzero(part_of < 0)):
        part = _pick(rng, parts[room > 0], room)
        part_of[index] = part
        room[part] -= 1
    return [rng.permutation(np.flatnonzero(part_of == p)) for p in parts]
