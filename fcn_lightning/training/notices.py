"""Third-party notices known to be harmless for the suite's runs, filtered (each with why); every other
warning shows: a notice that never asks anything of the user hides the ones that do."""

from __future__ import annotations

import logging
import re
import warnings

#: Warnings (message regex, why it is harmless here).
HARMLESS_WARNINGS: tuple[tuple[str, str], ...] = (
    (
        r"Starting from v1\.9\.0, `tensorboardX` has been removed",
        "without TensorBoard installed, Lightning's CSV logger is the default, which the suite reads as well",
    ),
    (r".*isinstance\(treespec, LeafSpec\)", "a deprecation inside Lightning's own code"),
    (
        r"The number of training batches \(\d+\) is smaller than the logging interval",
        "progress and logs come every log_every_n_steps steps across epochs, not per epoch",
    ),
    (r"LightningCLI's args parameter is intended", "the commands hand their own arguments on"),
    (
        r"\s*Dump of a value that does not round-trip: a tuple is serialized as list",
        "a generator's tuple settings (image size, ranges) are read back as lists, which they accept",
    ),
    (
        r"Checkpoint directory .* exists and is not empty",
        "auto-resume continues the run in that folder, or refuses another model's run in one line",
    ),
)
#: Lightning's info lines (message regex, why).
HARMLESS_LOG_LINES: tuple[tuple[str, str], ...] = (
    (r"💡 Tip: For seamless cloud logging", "an advertisement for a logging service"),
    (r"(TPU|HPU) available: ", "the suite runs on CPUs and GPUs; the GPU line stays"),
)
_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
_HARMLESS_LINE = re.compile("|".join(f"(?:{p})" for p, _ in HARMLESS_LOG_LINES))


def _not_harmless(record: logging.LogRecord) -> bool:
    return _HARMLESS_LINE.match(record.getMessage()) is None


def filter_harmless_notices() -> None:
    """Silence :data:`HARMLESS_WARNINGS` and :data:`HARMLESS_LOG_LINES` in this process (idempotent)."""
    for pattern, _ in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in _LIGHTNING_INFO_LOGGERS:
        logging.getLogger(name).addFilter(_not_harmless)  # added once: addFilter skips a filter it has
