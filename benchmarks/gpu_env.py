"""The GPU machine's Python environment, for ``benchmarks/gpu_acceptance.sh``: the packages its image lacks
unpacked from wheels into a folder on ``PYTHONPATH``; what the run imports and from where; and, for the
CPU rehearsal, the same layout built from this environment.

    python benchmarks/gpu_env.py unpack WHEELS TARGET   every WHEELS/*.whl unpacked into TARGET
    python benchmarks/gpu_env.py versions               torch, CUDA, cuDNN, the device, and each package
                                                        the run needs: its version and where it is from
    python benchmarks/gpu_env.py rehearsal DIR          DIR/wheels and DIR/venv (below); prints the venv's
                                                        python

``unpack`` does what ``pip install --no-deps --target`` does for these wheels (their importable files,
executables kept executable), with the standard library alone: the GPU machine's image need not have pip.

``rehearsal`` lays out, on any machine, what the GPU machine has: ``DIR/venv``, a venv whose site-packages
links to every entry of this environment's except the files of the distributions listed in
``benchmarks/gpu_wheels.txt``, of this project (which runs from the checkout) and of pip; and ``DIR/wheels``,
those distributions as installed here, packed as wheels. The rehearsal then unpacks them as the real run
does, so a package missing from the list, a replaced ``PYTHONPATH`` or a step that needs pip fails there.
Only the standard library is imported at the top: ``unpack`` runs before the wheels are there.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
WHEEL_LIST = ROOT / "benchmarks" / "gpu_wheels.txt"
#: What the GPU machine's image lacks and a run imports (the rest of the list is what these need).
MISSING_ON_THE_GPU_MACHINE = ("jsonargparse", "omegaconf", "albumentations", "wandb")
#: What the CUDA tests import besides the project's requirements (distribution -> module), said by
#: ``versions`` (the GPU image is assumed to hold them: the rehearsal cannot tell).
TEST_NEEDS = {"pytest": "pytest", "scipy": "scipy", "pillow": "PIL", "numpy": "numpy"}


class EnvError(Exception):
    """A one-line reason the environment cannot be laid out."""


# ------------------------------------------------------------------------------------------ unpacking


def _installed_name(member: str) -> str | None:
    """Where a wheel's member goes under the target (``<dist>.data/purelib|platlib/x`` -> ``x``); None for
    what an import never reads (scripts, headers, data files)."""
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts:
        raise EnvError(f"a wheel member outside the target: {member}")
    if path.parts[0].endswith(".data"):
        inside = path.parts[1:]
        return (
            str(PurePosixPath(*inside[1:]))
            if len(inside) > 1 and inside[0] in ("purelib", "platlib")
            else None
        )
    return member


def unpack(wheels: Path, target: Path) -> list[Path]:
    """Every ``wheels/*.whl`` unpacked into ``target``; the wheels unpacked."""
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise EnvError(
            f"no wheels in {wheels} (benchmarks/README.md, GPU acceptance, says how to fetch them)"
        )
    target.mkdir(parents=True, exist_ok=True)
    for wheel in found:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = _installed_name(info.filename)
                if name is None or info.is_dir():
                    continue
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(path, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                if (info.external_attr >> 16) & 0o111:  # an executable (wandb's service binary)
                    path.chmod(path.stat().st_mode | 0o111)
    return found


# ------------------------------------------------------------------------------------------- versions


def versions() -> list[str]:
    """What the run imports: torch with its CUDA, cuDNN and device, lightning, and each package the GPU
    machine lacks, with its version and the folder it was imported from."""
    import lightning
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU)"
    lines = [
        f"python {sys.version.split()[0]} ({sys.executable})",
        f"torch {torch.__version__} | CUDA {torch.version.cuda} | cuDNN {torch.backends.cudnn.version()} "
        f"| lightning {lightning.__version__} | device {device}",
    ]
    for name in MISSING_ON_THE_GPU_MACHINE:
        module = __import__(name)
        folder = Path(module.__file__ or "").parent.parent
        lines.append(f"{name} {importlib.metadata.version(name)} from {folder}")
    found = [
        f"{name} {importlib.metadata.version(name)}"
        if importlib.util.find_spec(module)
        else f"{name} MISSING"
        for name, module in TEST_NEEDS.items()
    ]
    lines.append(f"the tests also import: {', '.join(found)}")
    return lines


# ------------------------------------------------------------------------------------------ rehearsal


def pinned(wheel_list: Path = WHEEL_LIST) -> dict[str, str]:
    """``name -> version`` of each ``name==version`` line of the wheel list."""
    pins = {}
    for line in wheel_list.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def _files(dist: importlib.metadata.Distribution) -> list[PurePosixPath]:
    """A distribution's files inside its site-packages (its RECORD; scripts in ``bin/`` left out)."""
    return [PurePosixPath(str(f)) for f in dist.files or [] if not str(f).startswith("..")]


def pack_installed(pins: dict[str, str], dest: Path) -> list[Path]:
    """Each pinned distribution, as installed in this environment, packed as a wheel into ``dest``; a
    version other than the pinned one is refused (the GPU machine would run other code than is tested)."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = []
    for name, version in pins.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise EnvError(f"{WHEEL_LIST.name} lists {name}, which this environment does not have") from None
        if dist.version != version:
            raise EnvError(
                f"{WHEEL_LIST.name} pins {name}=={version}, this environment has {dist.version}: the GPU "
                "machine would run another version than the one tested here"
            )
        wheel = dest / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:  # stored: quick, modes kept
            for file in _files(dist):
                source = dist.locate_file(file)
                if "__pycache__" not in file.parts and Path(source).is_file():
                    archive.write(source, str(file))
        wheels.append(wheel)
    return wheels


def _prefixes(paths: Iterable[PurePosixPath]) -> set[PurePosixPath]:
    """Every path and every folder above it."""
    return {p for path in paths for p in (path, *list(path.parents)[:-1])}


def _link_tree(source: Path, dest: Path, left_out: set[PurePosixPath], kept: set[PurePosixPath]) -> None:
    """Links in ``dest`` to the entries of ``source``, less those that hold only left-out files (a folder
    that holds both, such as a namespace package, is made and linked into entry by entry)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        name = PurePosixPath(entry.name)
        if name in left_out and name not in kept:
            continue
        if name in left_out and entry.is_dir() and not entry.is_symlink():
            inner = {PurePosixPath(*p.parts[1:]) for p in left_out if p.parts[0] == entry.name and p != name}
            within = {PurePosixPath(*p.parts[1:]) for p in kept if p.parts[0] == entry.name and p != name}
            _link_tree(entry, dest / entry.name, inner, within)
        else:
            (dest / entry.name).symlink_to(entry)


def project_name() -> str:
    """This project's distribution name (``pyproject.toml``)."""
    match = re.search(r'^name\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert match is not None, "pyproject.toml names no project"
    return match.group(1)


def rehearsal_venv(folder: Path, leave_out: Iterable[str]) -> Path:
    """A venv in ``folder`` that sees this environment's packages but the distributions ``leave_out``,
    this project and pip; its python."""
    leave = {importlib.metadata.distribution(n).metadata["Name"].lower() for n in leave_out}
    leave |= {project_name().lower(), "pip"}  # the project runs from the checkout; nothing may need pip
    site = Path(sysconfig.get_paths()["purelib"])
    dists = [d for d in importlib.metadata.distributions(path=[str(site)])]
    left_out = _prefixes(f for d in dists if d.metadata["Name"].lower() in leave for f in _files(d))
    kept = _prefixes(f for d in dists if d.metadata["Name"].lower() not in leave for f in _files(d))
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    scheme = {"base": str(folder), "platbase": str(folder)}
    target = Path(sysconfig.get_path("purelib", "posix_prefix", vars=scheme))
    _link_tree(site, target, left_out, kept)
    python = folder / "bin" / "python"
    _check(python)
    return python


def _check(python: Path) -> None:
    """The rehearsal's python finds torch and lightning, and none of the packages the GPU machine lacks."""
    names = ("torch", "lightning", *MISSING_ON_THE_GPU_MACHINE)
    code = f"import importlib.util as u; print(' '.join(n for n in {names!r} if u.find_spec(n)))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONNOUSERSITE": "1"}
    found = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
    seen = found.stdout.split()
    if seen[:2] != ["torch", "lightning"] or len(seen) != 2:
        raise EnvError(f"the rehearsal's python {python} finds {seen}, not torch and lightning alone")


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_env.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    do_unpack = commands.add_parser("unpack", help="unpack every WHEELS/*.whl into TARGET")
    do_unpack.add_argument("wheels", type=Path)
    do_unpack.add_argument("target", type=Path)
    commands.add_parser("versions", help="what the run imports, with versions and folders")
    do_rehearsal = commands.add_parser("rehearsal", help="DIR/wheels and DIR/venv laid out as on the GPU")
    do_rehearsal.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.command == "unpack":
            found = unpack(args.wheels, args.target)
            size = sum(w.stat().st_size for w in found) / 2**20
            seconds = time.perf_counter() - start
            print(f"unpacked {len(found)} wheels ({size:.0f} MiB) into {args.target} in {seconds:.1f} s")
        elif args.command == "versions":
            print("\n".join(versions()))
        else:
            wheels = pack_installed(pinned(), args.folder / "wheels")
            python = rehearsal_venv(args.folder / "venv", pinned())
            said = f"{len(wheels)} wheels in {args.folder / 'wheels'}; a venv without them (nor pip) in "
            print(
                f"rehearsal: {said}{python.parents[1]}; {time.perf_counter() - start:.1f} s", file=sys.stderr
            )
            print(python)
    except EnvError as error:
        print(f"gpu_env.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
