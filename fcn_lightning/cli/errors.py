"""How every command reports a bad command line: one line, ``fcn-lightning <command>: error: ...``, exit 2,
naming the setting and what is wrong (not argparse's usage block or jsonargparse's namespace dump)."""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from fcn_lightning.cli.help import closest, did_you_mean, with_suggestions

_CLASS_PROBLEM = re.compile(r"Problem with given class_path '([^']+)':\n((?:\s{6,}.*(?:\n|$))+)")
#: A problem of a class inside a class's option (``data.init_args.generator``'s config class).
_NESTED = re.compile(r"--[\w.]+: Problem with given class_path '([^']+)'")
#: jsonargparse's words for a value that none of an option's types takes (``loss_weights median``).
_UNION_VALUE = re.compile(
    r"^(--[\w.]+): Does not validate against any of the Union subtypes Subtypes: \[(.*)\] Errors: .*"
    r"Given value: (.*)$"
)
#: The top-level key that makes a YAML file the plan of a command that runs several fits, by command.
PLAN_KEYS = {"staged": "stages", "compare-sampling": "patch_size"}


class CommandError(Exception):
    """A problem the user can fix: the command ends with its message in one line, exit 2."""


def error_line(prog: str, message: str) -> None:
    """Print ``<prog>: error: <message>`` to stderr, its newlines folded."""
    text = " ".join(line.strip() for line in str(message).strip().splitlines() if line.strip())
    print(f"{prog}: error: {text}", file=sys.stderr)


def fail(prog: str, message: str) -> NoReturn:
    """:func:`error_line`, then exit 2."""
    error_line(prog, message)
    sys.exit(2)


def counted(number: int, noun: str) -> str:
    """``"1 file"``, ``"2 files"``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors, an unknown option named with the one it resembles."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, with_suggestions(message, self))


def command_parser(command: str, description: str) -> OneLineArgumentParser:
    """The parser of ``fcn-lightning <command>`` (no abbreviated options)."""
    return OneLineArgumentParser(prog=f"fcn-lightning {command}", description=description, allow_abbrev=False)


def check_config_file(path: str | Path, run_config: bool = False) -> str | None:
    """What is wrong with a YAML config file (missing, unreadable, not YAML, not a mapping; for a
    ``run_config``, a plan of several fits, :data:`PLAN_KEYS`), or ``None``."""
    path = Path(path)
    if not path.is_file():
        return f"config file {path} does not exist" + (
            " (it is a folder)" if path.is_dir() else did_you_mean(str(path), _neighbours(path))
        )
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return f"config file {path} cannot be read ({type(error).__name__}: {error})"
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        return f"config file {path} is not valid YAML{where}: {problem}"
    if content is not None and not isinstance(content, dict):
        return (
            f"config file {path} holds a {type(content).__name__}, not a mapping of settings "
            f"(e.g. 'trainer: ...', 'model: ...')"
        )
    plan = next((c for c, key in PLAN_KEYS.items() if key in (content or {})), None) if run_config else None
    if plan is not None:
        return (
            f"config file {path} is a plan of several fits ('{PLAN_KEYS[plan]}:'), not a run's config: run "
            f"it with fcn-lightning {plan} --config {path}"
        )
    return None


def yaml_mapping(path: str | Path) -> dict[str, Any] | None:
    """A YAML file's mapping; ``None`` for a file that is missing, unreadable or no mapping."""
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return content if isinstance(content, dict) else None


def _neighbours(path: Path) -> list[str]:
    """The YAML files a mistyped ``path`` may have meant: of its folder, or of the folder it resembles."""
    folder = path.parent
    if not folder.is_dir():
        if not folder.parent.is_dir() or (mistyped := closest(folder.name, _names(folder.parent))) is None:
            return []
        folder = folder.parent / mistyped
    return [str(folder / name) for name in _names(folder) if name.endswith((".yaml", ".yml"))]


def _names(folder: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in folder.iterdir())
    except OSError:
        return []


def suite_classes(section: str) -> dict[str, type]:
    """The suite's concrete classes for ``model`` or ``data``, by import path."""
    if section == "model":
        from fcn_lightning.systems.classes import MODEL_CLASSES, class_path

        return {class_path(cls): cls for cls in MODEL_CLASSES.values()}
    from fcn_lightning import data
    from fcn_lightning.data.base import SegmentationDataModule

    found = {n: getattr(data, n) for n in data.__all__ if inspect.isclass(getattr(data, n, None))}
    return {
        f"{data.__name__}.{n}": cls
        for n, cls in found.items()
        if issubclass(cls, SegmentationDataModule) and cls is not SegmentationDataModule
    }


def known_classes(section: str) -> list[str]:
    """The import paths of the suite's concrete classes for ``model`` or ``data``."""
    return sorted(suite_classes(section))


def class_options(section: str, class_path: str) -> list[str]:
    """The init options of one of the suite's classes, or of a class the package exports for a data
    option (a generator's config), found by its name; empty for any other."""
    if section == "model":
        from fcn_lightning.systems.classes import UnknownModelError, model_class

        try:
            return init_options(model_class(class_path))
        except UnknownModelError:
            return []
    from fcn_lightning import data

    name = class_path.rpartition(".")[2]
    cls = getattr(data, name, None) if name in data.__all__ else None
    return init_options(cls) if inspect.isclass(cls) else []


def init_options(cls: type) -> list[str]:
    """The init options of a class, as jsonargparse reads them (empty if it cannot)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    try:
        parser.add_class_arguments(cls, "x")
    except Exception:  # the error being reported stays the message; the list is a help
        return []
    keys = parser.get_defaults().keys()  # a jsonargparse Namespace: iterating it is not iterating its keys
    return sorted({k.split(".")[1] for k in keys if k.startswith("x.")})


def clearer_parse_error(message: str) -> str:
    """jsonargparse's message for a bad ``model`` / ``data`` value, without the union and namespace dump:
    an unknown class or option with the ones there are, any other problem as jsonargparse words it."""
    section = re.search(r'Parser key "(model|data)"', message)
    if section is None or "Union subtypes" not in message:
        return re.sub(r'Parser key "([^"]+)":\s*', r"--\1: ", message)
    key = section.group(1)
    known = ", ".join(known_classes(key))
    if m := re.search(r"Expected a dot import path string: (\S+)", message):
        meant = class_meant(key, m.group(1))
        return f"{key}: unknown class {m.group(1)!r}{meant}; the suite's {key} classes are: {known}"
    m = _CLASS_PROBLEM.search(message)
    if m is None:
        return message
    class_path = m.group(1)
    problem = " ".join(line.strip() for line in m.group(2).splitlines() if line.strip())
    problem = re.sub(r'Parser key "([^"]+)":\s*', r"\1: ", problem)
    if "has no attribute" in problem or "No module named" in problem or "not a subclass" in problem:
        return (
            f"{key}: unknown class {class_path!r} ({problem}){class_meant(key, class_path)}; "
            f"the suite's {key} classes are: {known}"
        )
    text = f"{key} {class_path}: {_union_value_problem(problem) or problem}"
    if m := re.search(r"Option '([^']+)' is not accepted", problem):
        nested = _NESTED.match(problem)
        options = class_options(key, nested.group(1) if nested else class_path)
        text += f"{did_you_mean(m.group(1), options)}; its options are: {', '.join(options)}"
    elif m := re.search(r"unrecognized arguments: --([\w.]+)", problem):
        option, _, rest = m.group(1).partition(".")
        meant = closest(option, class_options(key, class_path))
        text += f" (did you mean --{key}.init_args.{meant}{'.' + rest if rest else ''}?)" if meant else ""
    return text


def _union_value_problem(problem: str) -> str | None:
    """A value of none of an option's types, with what the option takes: ``--loss_weights: 'median' is
    none of: auto, a list of float, null``; ``None`` for any other problem."""
    m = _UNION_VALUE.match(problem)
    if m is None:
        return None
    option, subtypes, given = m.groups()
    words: list[str] = []
    for subtype in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", subtypes):
        subtype = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", subtype.strip())
        if literal := re.fullmatch(r"(?:typing\.)?Literal\[(.*)\]", subtype):
            words += [v.strip().strip("'\"") for v in literal.group(1).split(",")]
        elif sequence := re.fullmatch(r"(list|tuple|dict)\[(.*)\]", subtype):
            kind, inner = sequence.groups()
            parts = [part.strip() for part in inner.split(",")]
            if kind == "dict" and len(parts) == 2:
                words.append(f"a mapping of {parts[0]} to {parts[1]}")
            elif kind == "tuple" and len(parts) > 1 and parts[-1] != "...":
                words.append(f"a tuple ({', '.join(parts)})")
            else:
                words.append(f"a {kind} of {parts[0]}")
        else:
            words.append({"NoneType": "null"}.get(subtype, subtype))
    return f"{option}: {given!r} is none of: {', '.join(words)}{did_you_mean(given, words)}"


def class_meant(section: str, given: str) -> str:
    """``" (did you mean fcn_lightning.FCN8s?)"`` for a mistyped class, by its path or its name alone."""
    paths = suite_classes(section)
    if "." not in given:
        by_name = {path.rpartition(".")[2]: path for path in paths}
        found = closest(given, by_name)
        return f" (did you mean {by_name[found]}?)" if found else ""
    return did_you_mean(given, paths)


def constructor_error(error: BaseException) -> BaseException | None:
    """The exception a class raised while jsonargparse built it, under the errors jsonargparse wrapped it
    in (following ``__cause__``); ``None`` when jsonargparse itself raised the innermost one."""
    while _raised_by_jsonargparse(error) and error.__cause__ is not None:
        error = error.__cause__
    return None if _raised_by_jsonargparse(error) else error


def _raised_by_jsonargparse(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").split(".")[0] == "jsonargparse"


def dataset_error_message(error: BaseException) -> str:
    """A dataset error's own message, also where torch re-raised a DataLoader worker's as the same type
    with the worker's formatted traceback for message (whose last line is ``module.Type: message``)."""
    text = str(error)
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
    module, name = type(error).__module__, type(error).__qualname__
    name = f"{name}: " if module in ("builtins", "__main__") else f"{module}.{name}: "
    return last[len(name) :] if "\n" in text.strip() and last.startswith(name) else text


def data_error(error: BaseException, check_data: str | None) -> CommandError:
    """A bad dataset file a run met as one line: the file, what is wrong, what to do, and ``check_data``
    (the command that lists every problem of the same data)."""
    text = dataset_error_message(error)
    if advice := getattr(error, "advice", ""):
        text += f"; {advice}"
    if check_data is not None:
        text += f". Every problem of the data: {check_data}"
    return CommandError(text)
