"""What a command's ``--help`` shows: the options the command uses (the others stay parseable: a run's
``config.yaml`` holds every section), each described in plain text; and the option a mistyped one meant."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable

#: Trainer options only a fit reads: how long it trains, when it validates, how it steps, what it keeps.
FIT_ONLY_TRAINER_OPTIONS = (
    *("max_epochs", "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches"),
    *("overfit_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps"),
    *("accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "detect_anomaly"),
    *("enable_checkpointing", "enable_model_summary", "reload_dataloaders_every_n_epochs"),
)
_FIT_SECTIONS = ("checkpoint", "resume", "divergence")
_FIT_ONLY = (*_FIT_SECTIONS, *(f"trainer.{o}" for o in FIT_ONLY_TRAINER_OPTIONS))
_LIMITS = {f"trainer.limit_{loop}_batches" for loop in ("val", "test", "predict")}

#: What each command's help leaves out (a section, or one option of it).
HIDDEN: dict[str, tuple[str, ...]] = {
    "fit": ("predictions", *sorted(_LIMITS - {"trainer.limit_val_batches"})),
    "validate": (*_FIT_ONLY, "predictions", *sorted(_LIMITS - {"trainer.limit_val_batches"})),
    "test": (*_FIT_ONLY, "predictions", *sorted(_LIMITS - {"trainer.limit_test_batches"})),
    "predict": (*_FIT_ONLY, *sorted(_LIMITS - {"trainer.limit_predict_batches"})),
    "check-data": ("seed_everything", "trainer", "model", "predictions", "speed", *_FIT_SECTIONS),
}

#: Titles of the sections whose class's first docstring line is no title (Lightning's), by option.
TITLES = {
    "trainer": "How the command runs: devices, precision, loggers, callbacks (Lightning's Trainer)",
    "checkpoint": "The best (by validation mean IU) and the last checkpoints of a fit (ModelCheckpoint)",
    "ckpt_path": "The checkpoint the command loads (fit: by default its folder's last.ckpt, of the same run)",
}

_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :class:`~a.B` -> a.B, :func:`text <x>` -> text
_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_")  # `text <url>`_ -> text (url)
_LITERAL = re.compile(r"``(.+?)``|`([^`]+)`", re.DOTALL)
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)$")


def plain_text(text: str) -> str:
    """reStructuredText roles, links and literals as plain text: ``:class:`~x.Y``` -> ``Y``."""
    text = _ROLE.sub(lambda m: m.group(1).rpartition(".")[2] if "~" in m.group(0) else m.group(1), text)
    text = _LINK.sub(r"\1 (\2)", text)
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)


def show_used_options(parser: argparse.ArgumentParser, command: str | None) -> None:
    """Before ``command``'s help is printed (and the command ends): only its options, in plain text, each
    section titled. Edits argparse's ``_actions``, ``_action_groups`` (no public API lists them)."""
    hidden = HIDDEN.get(command or "", ())
    for action in {*parser._actions, *(a for group in parser._action_groups for a in group._group_actions)}:
        if any(action.dest == key or action.dest.startswith(f"{key}.") for key in hidden):
            action.help = argparse.SUPPRESS
        elif isinstance(action.help, str):
            action.help = plain_text(action.help)
    parser._action_groups = [
        group
        for group in parser._action_groups
        if any(action.help is not argparse.SUPPRESS for action in group._group_actions)
    ]
    for group in parser._action_groups:
        keys = [action.dest.split(".")[0] for action in group._group_actions]
        title = next((TITLES[key] for key in keys if key in TITLES), group.title)
        group.title = title and plain_text(title)
        group.description = group.description and plain_text(group.description)
    parser.description = parser.description and plain_text(parser.description)


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate ``word`` most resembles (a mistyped option, class or file name), or ``None``."""
    return next(iter(difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)), None)


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    """``" (did you mean X?)"`` for the candidate ``word`` most resembles; empty when none does."""
    found = closest(word, candidates, cutoff)
    return f" (did you mean {found}?)" if found else ""


def with_suggestions(message: str, parser: argparse.ArgumentParser) -> str:
    """argparse's ``unrecognized arguments`` / ``invalid choice`` with the option or choice each unknown one
    most resembles (read from argparse's ``_option_string_actions``); any other message as it is."""
    if choice := _INVALID_CHOICE.search(message):
        meant = closest(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        return message + (f"; did you mean '{meant}'?" if meant else "")
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return message
    options = [o for o, action in parser._option_string_actions.items() if action.help != argparse.SUPPRESS]
    unknown = [arg.split("=", 1)[0] for arg in message[len(prefix) :].split() if arg.startswith("-")]
    close = [match for arg in unknown if (match := closest(arg, options)) is not None]
    return message + (f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else "")
