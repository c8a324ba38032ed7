"""Entity tagging schemes: checking, converting, and the transitions each
allows.

- **IOB2** (also called BIO): `B-X` starts every entity of type `X`, `I-X`
  continues it, `O` is outside.
- **IOB1** (the original CoNLL-2003 files): `I-X` starts an entity too;
  `B-X` appears only where an entity starts right after another of the
  same type.
- **IOBES**: `S-X` is a one-word entity; a longer one is `B-X`, any
  `I-X`, then `E-X`.

Everything else in kfinetune (entity F1, `EntityF1`, CRF constraints)
reads IOB2 or IOBES: convert IOB1 when reading it
(`from_conll(..., scheme="IOB1")`).
"""

from kfinetune import checks

SCHEMES = ("IOB1", "IOB2", "BIO", "IOBES")
# The prefixes each scheme allows, besides the plain `O` tag.
PREFIXES = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "BIO": ("B", "I"),
    "IOBES": ("B", "I", "E", "S"),
}


def split_tag(tag):
    """`(prefix, type)`, or `("O", None)`; `None` for a malformed tag."""
    if tag == "O":
        return "O", None
    prefix, dash, kind = str(tag).partition("-")
    if not dash or not kind or prefix == "O":
        return None
    return prefix, kind


def _parse(tags, scheme, where):
    parsed = []
    for position, tag in enumerate(tags):
        split = split_tag(tag)
        if split is None or (
            split[0] != "O" and split[0] not in PREFIXES[scheme]
        ):
            allowed = ", ".join(f"{p}-TYPE" for p in PREFIXES[scheme])
            raise ValueError(
                f"{where}, word {position}: tags of scheme {scheme!r} are O "
                f"or {allowed}. Received: tag={tag!r}"
            )
        parsed.append(split)
    return parsed


def _iob2_error(parsed, where, tags):
    """The first IOB2 violation of `parsed`, or `None`."""
    previous = ("O", None)
    for position, (prefix, kind) in enumerate(parsed):
        if prefix == "I" and not (
            previous[0] in ("B", "I") and previous[1] == kind
        ):
            if position == 0:
                return f"{where}, word 0: the sentence starts with {tags[0]!r}"
            return (
                f"{where}, word {position}: {tags[position]!r} follows "
                f"{tags[position - 1]!r}"
            )
        previous = (prefix, kind)
    return None


def check_tags(tags, scheme, where="tags"):
    """Checks one sentence's tags against `scheme`.

    Args:
        tags: the tag strings of one sentence.
        scheme: `"IOB1"`, `"IOB2"` (or `"BIO"`) or `"IOBES"`.
        where: how error messages name the sentence. Defaults to `"tags"`.

    Raises:
        ValueError: for a tag the scheme does not have, an IOB2 `I-X` that
            does not continue an `X` entity (the message suggests IOB1), or
            an IOBES entity that is not `S-X` or `B-X I-X... E-X`.

    Example:

    ```python
    kfinetune.data.check_tags(["B-PER", "I-PER", "O"], "IOB2")
    ```
    """
    checks.one_of("scheme", scheme, SCHEMES)
    tags = list(tags)
    parsed = _parse(tags, scheme, where)
    if scheme in ("IOB2", "BIO"):
        error = _iob2_error(parsed, where, tags)
        if error:
            raise ValueError(
                f"{error}: in IOB2 an I-X continues a B-X or I-X. Tags "
                "where I-X starts entities are IOB1 (the original "
                "CoNLL-2003 files): read them with scheme='IOB1', which "
                f"converts them to IOB2. Received: tags={tags!r}"
            )
    elif scheme == "IOBES":
        if _to_iobes(_to_iob2(parsed, "IOBES")) != parsed:
            raise ValueError(
                f"{where}: not valid IOBES (an entity is S-X, or B-X, any "
                f"I-X, then E-X). Received: tags={tags!r}"
            )
    elif scheme == "IOB1":
        previous = ("O", None)
        for position, (prefix, kind) in enumerate(parsed):
            if prefix == "B" and previous[1] != kind:
                raise ValueError(
                    f"{where}, word {position}: in IOB1 a B-X only starts "
                    "an entity right after another X entity. Received: "
                    f"tags={tags!r}"
                )
            previous = (prefix, kind)


def _to_iob2(parsed, scheme):
    """IOB2 `(prefix, type)` pairs of one parsed sentence in `scheme`."""
    out = []
    previous = ("O", None)
    for prefix, kind in parsed:
        if prefix == "O":
            out.append(("O", None))
        elif prefix in ("B", "S"):
            out.append(("B", kind))
        elif scheme == "IOB1" and not (
            previous[0] != "O" and previous[1] == kind
        ):
            out.append(("B", kind))
        elif scheme == "IOBES" and previous[0] in ("E", "S", "O"):
            out.append(("B", kind))
        else:
            out.append(("I", kind))
        previous = (prefix, kind)
    return out


def _to_iobes(iob2):
    out = []
    for position, (prefix, kind) in enumerate(iob2):
        following = iob2[position + 1] if position + 1 < len(iob2) else None
        continues = following == ("I", kind)
        if prefix == "B":
            out.append(("B" if continues else "S", kind))
        elif prefix == "I":
            out.append(("I" if continues else "E", kind))
        else:
            out.append(("O", None))
    return out


def _join(parsed):
    return [p if p == "O" else f"{p}-{k}" for p, k in parsed]


def convert_tags(tags, source, target):
    """Converts one sentence's tags between schemes.

    Args:
        tags: the tag strings of one sentence, valid in `source`.
        source: the scheme of `tags`: `"IOB1"`, `"IOB2"` (or `"BIO"`) or
            `"IOBES"`.
        target: `"IOB2"` (or `"BIO"`) or `"IOBES"`.

    Returns:
        A list of tag strings.

    Raises:
        ValueError: for an unknown scheme, IOB1 as the target, or tags not
            valid in `source` (see `check_tags`).

    Example:

    ```python
    kfinetune.data.convert_tags(["I-PER", "I-PER", "B-PER"], "IOB1", "IOB2")
    # ["B-PER", "I-PER", "B-PER"]
    kfinetune.data.convert_tags(["B-PER", "I-PER", "O"], "IOB2", "IOBES")
    # ["B-PER", "E-PER", "O"]
    ```
    """
    checks.one_of("source", source, SCHEMES)
    checks.one_of("target", target, ("IOB2", "BIO", "IOBES"))
    check_tags(tags, source)
    iob2 = _to_iob2(_parse(list(tags), source, "tags"), source)
    return _join(_to_iobes(iob2) if target == "IOBES" else iob2)


def tag_constraints(tag_names, scheme="IOB2"):
    """The transitions, starts and ends `scheme` allows between
    `tag_names`, for `kfinetune.layers.CRF(constraints=...)`.

    IOB2: `I-X` only after `B-X` or `I-X`, and never first. IOBES: after
    `B-X` or `I-X` only `I-X` or `E-X`; `I-X` and `E-X` only after `B-X` or
    `I-X`; a sentence starts with `O`, `B-X` or `S-X` and ends with `O`,
    `E-X` or `S-X`.

    Args:
        tag_names: the tag vocabulary in label order (e.g.
            `TaggedSentences.tag_names`).
        scheme: `"IOB2"` (or `"BIO"`) or `"IOBES"`. Defaults to `"IOB2"`.

    Returns:
        A dict of boolean lists: `"transitions"` `[i][j]` (may tag `i` be
        followed by tag `j`), `"start"` and `"end"`.

    Raises:
        ValueError: an unknown scheme, or a tag that is not `O` or a prefix
            of the scheme, a dash and a type.

    Example:

    ```python
    constraints = kfinetune.data.tag_constraints(
        ("O", "B-PER", "I-PER"), "IOB2")
    constraints["transitions"][0][2]  # False: O then I-PER
    ```
    """
    checks.one_of("scheme", scheme, ("IOB2", "BIO", "IOBES"))
    tag_names = list(tag_names)
    parsed = _parse(tag_names, scheme, "tag_names")
    opens = ("O", "B", "S") if scheme == "IOBES" else ("O", "B")
    closes = ("O", "E", "S") if scheme == "IOBES" else ("O", "B", "I")
    inside = ("I", "E") if scheme == "IOBES" else ("I",)
    entity_open = ("B", "I")

    def allowed(first, second):
        (p1, k1), (p2, k2) = first, second
        if p2 in inside:
            return p1 in entity_open and k1 == k2
        # IOBES: an open entity must be closed by I-X or E-X first.
        return not (scheme == "IOBES" and p1 in entity_open)

    return {
        "transitions": [[allowed(a, b) for b in parsed] for a in parsed],
        "start": [p in opens for p, _ in parsed],
        "end": [p in closes for p, _ in parsed],
    }
