"""What a new user reads first: the top-level help at once (no torch, no Lightning imported), each command's
help with the options that command uses, each described, in plain text; a mistyped option named."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from functools import cache

import pytest

from fcn_lightning.cli import COMMANDS, FIRST_COMMANDS, main
from fcn_lightning.cli.help import HIDDEN, plain_text
from tests.helpers import CONFIGS, REPO, child_env

#: Modules the top-level help must not import: each costs seconds (torch alone 3 s on a small machine).
HEAVY = ("torch", "lightning", "jsonargparse", "numpy", "fcn_lightning.registry", "fcn_lightning.systems")
#: Each LightningCLI command, with options it uses (shown) and options of the sections it does not.
LIGHTNING_COMMANDS = {
    "fit": (["--resume.auto", "--checkpoint.monitor", "--divergence.check_every_n_steps"], ["--predictions"]),
    "validate": (["--ckpt_path", "--trainer.limit_val_batches"], ["--resume", "--trainer.max_steps"]),
    "test": (["--ckpt_path", "--trainer.limit_test_batches"], ["--checkpoint", "--predictions"]),
    "predict": (
        ["--predictions.output_dir", "--speed.compile"],
        ["--resume", "--checkpoint", "--divergence"],
    ),
    "check-data": (["--data", "--config"], ["--trainer", "--model", "--checkpoint", "--predictions"]),
}
MARKUP = re.compile(r"``|`|:(class|func|meth|attr|data|mod):")


@cache
def help_of(*args: str) -> str:
    """``fcn-lightning <args> --help`` as printed, in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    assert exit_info.value.code in (0, None), out.getvalue()
    return out.getvalue()


def options_of(text: str) -> dict[str, str]:
    """Each option of a help text (its first spelling) and its description (what follows the option and
    its value, on its line and the lines indented below it), without the type and default."""
    entries: dict[str, str] = {}
    option = None
    for line in text.splitlines():
        if re.match(r"  -", line):
            invocation, _, rest = line.strip().partition("  ")
            option = max(re.findall(r"-[-\w.]+", invocation), key=len)
            entries[option] = rest.strip()
        elif option and line.startswith(" " * 24):
            entries[option] += " " + line.strip()
        else:
            option = None
    return {k: re.sub(r"\s*\((type|default|required)\b.*$", "", v) for k, v in entries.items()}


def test_the_top_level_help_imports_neither_torch_nor_lightning():
    """Counted, not timed: a fresh interpreter prints the help and lists the heavy modules it imported."""
    code = (
        "import sys\nfrom fcn_lightning.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120, check=True
    )
    assert "IMPORTED []" in done.stdout, done.stdout
    assert "start here" in done.stdout


def test_the_top_level_help_ends_with_three_commands_that_exist(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert "describe --models" in "\n".join(lines)
    assert [line.split("#")[0].strip() for line in lines[-3:]] == [
        f"fcn-lightning {command}" for command, _ in FIRST_COMMANDS
    ]
    for command, _ in FIRST_COMMANDS:
        words = shlex.split(command)
        assert words[0] in COMMANDS
        assert all((REPO / w).is_file() for w in words if w.startswith("configs/")), command
    assert (CONFIGS / "synthetic" / "staged.yaml").is_file()


@pytest.mark.parametrize("command", LIGHTNING_COMMANDS)
def test_each_command_lists_the_options_it_uses_and_no_section_it_does_not(command):
    shown, left_out = LIGHTNING_COMMANDS[command]
    options = options_of(help_of(command))
    assert all(o in options for o in shown), (shown, sorted(options))
    assert not [o for o in options if any(o == x or o.startswith(f"{x}.") for x in left_out)]
    assert not [o for o in options if any(o.removeprefix("--").startswith(h) for h in HIDDEN[command])]


@pytest.mark.parametrize(
    "args",
    [
        *([c] for c in COMMANDS),
        ["fit", "--model.help", "fcn_lightning.FCN8s"],
        ["fit", "--data.help", "fcn_lightning.data.FolderDataModule"],
    ],
    ids=lambda args: " ".join(args),
)
def test_every_option_is_described_in_plain_text(args, capsys):
    if args[-1] not in COMMANDS:  # the class helps end in an exit of their own
        with pytest.raises(SystemExit):
            main(args)
        text = capsys.readouterr().out
    else:
        text = help_of(*args)
    assert not MARKUP.search(text), MARKUP.search(text).group(0)
    options = options_of(text)
    assert options and not [o for o, said in options.items() if not re.search(r"[a-z]", said)], options


def test_plain_text_drops_the_markup_of_docstrings():
    assert (
        plain_text("with :class:`~a.b.TrainingDiverged` and :func:`f <x.f>`") == "with TrainingDiverged and f"
    )
    assert plain_text("``last.ckpt`` every ``n``; `notes <https://x.org/a>`_") == (
        "last.ckpt every n; notes (https://x.org/a)"
    )


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (
            ["fit", "--config", str(CONFIGS / "synthetic/base.yaml"), "--trainer.max_step", "4"],
            "--trainer.max_steps",
        ),
        (["check-data", "--resume.aut", "false"], "--resume.auto"),
        (["describe", "--siz", "3"], "--size"),
    ],
)
def test_a_mistyped_option_is_named_with_the_one_it_resembles(args, meant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"fcn-lightning {args[0]}: error: unrecognized arguments: ")
    assert err.endswith(f"; did you mean {meant}?")


def test_each_data_module_and_model_help_is_titled_by_a_whole_sentence(capsys):
    import fcn_lightning
    import fcn_lightning.data

    data = [f"fcn_lightning.data.{n}" for n in fcn_lightning.data.__all__ if n.endswith("DataModule")]
    models = [f"fcn_lightning.{n}" for n in ("ZooFCNSystem", "FCN32sRGBHHA", "FCN16sRGBHHA", "FCN8s")]
    for section, class_path in [*(("--data.help", c) for c in data), *(("--model.help", c) for c in models)]:
        with pytest.raises(SystemExit):
            main(["fit", section, class_path])
        title = next(line for line in capsys.readouterr().out.splitlines() if line.endswith(":"))
        assert not re.search(r"(\b(the|two|a|an|and|of|in)[;,]?|[\"']):$", title), f"{class_path}: {title!r}"
