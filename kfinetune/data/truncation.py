"""`TruncationReport`: how many examples a sequence length cut short."""

import dataclasses
import logging

import numpy as np

logger = logging.getLogger(__name__)

COVERAGE = 0.99


@dataclasses.dataclass(frozen=True)
class TruncationReport:
    """How many examples did not fit a sequence length, and what would.

    Attributes:
        sequence_length: the length the examples were cut to.
        num_examples: the examples measured (dropped ones included).
        num_truncated: the examples longer than `sequence_length`, which
            lost their last tokens.
        length_99: the shortest sequence length that would hold 99 % of
            the examples whole.
        longest: the sequence length the longest example needs.
        dropped: the indices of the examples left out (see
            `kfinetune.data.instructions(drop_long_prompts=True)`).
            Defaults to `()`.
        name: what was measured, for messages (`"examples"`, `"sources"`,
            `"targets"`). Defaults to `"examples"`.
        argument: the argument that set `sequence_length`, for messages.
            Defaults to `"sequence_length"`.

    Example:

    ```python
    data = kfinetune.data.instructions(examples, tokenizer, 256)
    if data.truncation.num_truncated:
        print(data.truncation)  # 12 of 1000 examples truncated ...
    ```
    """

    sequence_length: int
    num_examples: int
    num_truncated: int
    length_99: int
    longest: int
    dropped: tuple = ()
    name: str = "examples"
    argument: str = "sequence_length"

    def __str__(self):
        text = (
            f"{self.num_truncated} of {self.num_examples} {self.name} "
            f"longer than {self.argument}={self.sequence_length} were "
            f"truncated; {self.argument}={self.length_99} would hold 99% "
            f"of them whole, {self.longest} all of them."
        )
        if self.dropped:
            text += f" {len(self.dropped)} were dropped."
        return text


def truncation_report(
    needed,
    sequence_length,
    dropped=(),
    name="examples",
    argument="sequence_length",
):
    """Measures the lengths `needed` against `sequence_length`, and logs it.

    A report with truncated examples is logged as a warning, one without as
    information (logger `kfinetune.data.truncation`).

    Args:
        needed: per example, the sequence length that would hold it whole.
        sequence_length: the length the examples are cut to.
        dropped: the indices of the examples left out. Defaults to `()`.
        name: what the lengths measure, for messages. Defaults to
            `"examples"`.
        argument: the argument that set `sequence_length`, for messages.
            Defaults to `"sequence_length"`.

    Returns:
        A `TruncationReport`.

    Example:

    ```python
    report = kfinetune.data.truncation.truncation_report([3, 9, 4], 8)
    report.num_truncated, report.length_99  # (1, 9)
    ```
    """
    needed = np.asarray(needed, dtype=np.int64)
    report = TruncationReport(
        sequence_length=int(sequence_length),
        num_examples=len(needed),
        num_truncated=int(np.sum(needed > sequence_length)),
        # The smallest length at least 99 % of the examples fit in.
        length_99=int(np.quantile(needed, COVERAGE, method="inverted_cdf")),
        longest=int(needed.max()),
        dropped=tuple(int(i) for i in dropped),
        name=name,
        argument=argument,
    )
    if report.num_truncated or report.dropped:
        logger.warning("%s", report)
    else:
        logger.info("%s", report)
    return report
