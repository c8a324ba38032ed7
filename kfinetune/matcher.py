"""The one matcher of layer and weight paths against target patterns.

A pattern is first tried as an exact path; when no path equals it, it is a
regular expression that must match a whole path (`re.fullmatch`). PEFT
targets, trainable patterns and layer groups all go through it, so a
pattern means the same thing everywhere.
"""

import difflib
import re


def _as_list(patterns):
    return [patterns] if isinstance(patterns, str) else list(patterns)


def match_paths(paths, patterns):
    """Selects the paths matched by any of `patterns`.

    Args:
        paths: the paths to choose from.
        patterns: a string or a list of strings. Each is an exact path, or
            else a regular expression that must match a whole path.

    Returns:
        The matching paths, in the order of `paths`, each once.

    Raises:
        ValueError: a pattern is neither a path nor a valid regular
            expression.

    Example:

    ```python
    kfinetune.matcher.match_paths(["a/query", "a/key"], r".*/query")
    # ['a/query']
    ```
    """
    known = dict.fromkeys(paths)
    chosen = set()
    for pattern in _as_list(patterns):
        if pattern in known:
            chosen.add(pattern)
            continue
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"A pattern must be a layer path or a regular expression "
                f"({error}). Received: pattern={pattern!r}"
            ) from error
        chosen.update(p for p in known if regex.fullmatch(p))
    return [p for p in known if p in chosen]


def match(sites, patterns):
    """Selects the `kfinetune.walk.Site`s whose layer path matches any of
    `patterns` (see `match_paths`), in the order of `sites`, each layer
    once."""
    chosen = set(match_paths([s.path for s in sites if s.path], patterns))
    result = []
    taken = set()
    for site in sites:
        if site.path in chosen and id(site.layer) not in taken:
            taken.add(id(site.layer))
            result.append(site)
    return result


def similar_paths(paths, patterns, n=5):
    """Up to `n` of `paths` that look like `patterns`, for error messages
    (the first `n` paths when none does)."""
    paths = list(paths)
    similar = []
    for pattern in _as_list(patterns):
        plain = re.sub(r"[^\w/]", "", pattern)
        for path in difflib.get_close_matches(plain, paths, n=n, cutoff=0.3):
            if path not in similar:
                similar.append(path)
    return (similar or paths)[:n]
