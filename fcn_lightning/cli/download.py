"""``fcn-lightning download NAME...``: the paper's data and weights, verified, where the configs read them;
then each completed dataset checked (as ``check-data`` does) and the command that trains on it, or converts
and scores a released FCN. Exit 0 when all is in place and clean, 1 when not, 2 for a bad command line."""

from __future__ import annotations

import os
import pkgutil
import shlex
from collections.abc import Sequence
from pathlib import Path

from fcn_lightning.cli.errors import command_parser, error_line
from fcn_lightning.data.download import (
    DATASETS,
    GROUPS,
    ITEMS,
    MANIFEST_NAME,
    WEIGHTS,
    AllSourcesFailed,
    DownloadError,
    Item,
    Places,
    UnknownItemError,
    install,
    plan,
    resolve_names,
)
from fcn_lightning.nets.caffe import VGG16_CAFFEMODEL

PROG = "fcn-lightning download"


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))


def listing(places: Places) -> str:
    """Every item (size, sources in order, checksum or the manifest route, destination) and every group."""
    lines = [f"items (data root {places.data}, weights folder {places.weights}):"]
    for item in ITEMS.values():
        checksum = (
            f"{item.checksum.algorithm} {item.checksum.digest} ({item.checksum.source})"
            if item.checksum
            else "none published: manifest route (the first download's sha256 is recorded and checked later)"
        )
        lines += [
            f"  {item.name}  {item.size or 'size unknown'}  {item.title}",
            f"      to: {', '.join(map(str, places.targets(item)))}",
            *(f"      from: {url}" for url in item.urls),
            f"      checksum: {checksum}",
        ]
    lines.append("groups:")
    width = max(map(len, GROUPS))
    lines += [f"  {name:<{width}}  {' '.join(members)}" for name, members in GROUPS.items()]
    return "\n".join(lines)


def check_dataset(name: str, folder: Path) -> list[str]:
    """What ``check-data`` finds in a dataset folder, built as its ``base.yaml`` builds it."""
    data_class = pkgutil.resolve_name(DATASETS[name].data_module)
    options = {}
    if name == "nyud":  # what the archives hold; HHA once prepare-nyud has written it
        options["modalities"] = ["rgb", "depth", *(["hha"] if (folder / "data" / "hha").is_dir() else [])]
    datamodule = data_class(root=str(folder), num_workers=0, **options)
    datamodule.prepare_data()
    return datamodule.check()


def download_command(names: Sequence[str], places: Places, mirror: str | None = None) -> str:
    """``fcn-lightning download NAMES`` into the same places as this run (its ``--root``, ``--mirror``)."""
    root = [] if Places.resolve().data == places.data else ["--root", _quote(places.data)]
    return " ".join([PROG, *names, *root, *(["--mirror", _quote(mirror)] if mirror else [])])


def next_steps(
    items: Sequence[Item], places: Places, failed: set[str], mirror: str | None = None
) -> tuple[list[str], int]:
    """Check each dataset the items belong to (once all it needs is there) and say what to run next:
    (lines, number of problems found)."""
    from fcn_lightning.cli.check_data import summarise_problems  # the check's words, and its CLI when needed

    lines: list[str] = []
    problems = 0
    # where the configs look, when it is not where the data went
    env = "" if Places.resolve().data == places.data else f"FCN_DATA={_quote(places.data)} "
    for name in dict.fromkeys(i.dataset for i in items if i.dataset != WEIGHTS):
        use, folder = DATASETS[name], places.data / name
        missing = [n for n in use.needs if not all(p.exists() for p in places.targets(ITEMS[n]))]
        if missing:
            if not set(missing) & failed:
                lines.append(
                    f"{name}: still needs {', '.join(missing)} ({download_command(missing, places, mirror)})"
                )
            continue
        print(
            f"checking {folder} (as fcn-lightning check-data --config {use.configs}/base.yaml does)",
            flush=True,
        )
        found = check_dataset(name, folder)
        problems += len(found)
        lines += [str(p) for p in found]
        lines.append(f"{name}: {summarise_problems(found)}")
        if found:
            continue
        steps = []
        if name == "nyud" and not (folder / "data" / "hha").is_dir():
            steps.append(f"fcn-lightning prepare-nyud --root {_quote(folder)}")
        steps.append(f"{env}fcn-lightning staged --config {use.configs}/staged.yaml")
        lines.append(f"{name}: to train the paper's schedule: {' && '.join(steps)}")
        if not (places.weights / VGG16_CAFFEMODEL).is_file():
            lines.append(
                f"{name}: its configs start from the Caffe VGG16: "
                f"{download_command(['vgg16-caffe'], places, mirror)}"
            )
    for item in items:
        if not item.validate or item.name in failed:
            continue
        checkpoint = _quote(places.weights / f"{Path(item.file).stem}.ckpt")
        convert = [f"{env}fcn-lightning convert-caffe", _quote(places.weights / item.file), *item.configs]
        validate = [f"{env}fcn-lightning validate", *item.validate, "--ckpt_path", checkpoint]
        lines.append(
            f"{item.name}: to score it as published: {' '.join(convert)} --out {checkpoint} && "
            f"{' '.join(validate)}"
        )
    return lines, problems


def _failure(error: Exception, item: Item, places: Places, mirror: str | None) -> str:
    """What went wrong with ``item``, and what to do about it."""
    if isinstance(error, AllSourcesFailed):
        recorded = (
            f"; it must match the sha256 recorded at its first download: if that copy was a bad one, delete "
            f"the entry {item.file!r} from {places.folder(item) / MANIFEST_NAME}"
        )
        return (
            f"no source delivered {item.file} ({', '.join(error.urls)}); fetch it by hand and put it at "
            f"{places.folder(item) / item.file}, then run {download_command([item.name], places, mirror)} "
            f"again{recorded if error.expected and not item.checksum else ''}"
        )
    if isinstance(error, OSError) and not error.filename:  # this side: a folder it cannot write into
        return f"{error} (writing into {places.folder(item)})"
    return str(error)


def main(argv: Sequence[str]) -> int:
    """``fcn-lightning download NAME... [--root DIR] [--mirror URL] [--dry-run] [--list]``."""
    parser = command_parser(
        "download",
        "Fetch the paper's datasets and weights into the places the configs read, each checked "
        "against its published checksum (or the sha256 recorded at its first download), resumable, unpacked "
        "atomically; then check the data and print the command that trains on it.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="items or groups (--list shows them)")
    parser.add_argument(
        "--root",
        default=None,
        help="the data root, one folder per dataset (default: $FCN_DATA, else ./data); weights go to "
        "$FCN_WEIGHTS, else <root>/weights",
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get("FCN_MIRROR") or None,
        help="fetch every file by its own name from this base first: an http(s):// or file:// address or a "
        "folder (default: $FCN_MIRROR); checksums are unchanged",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be fetched and where; do nothing"
    )
    parser.add_argument(
        "--list", action="store_true", help="every item: size, sources, checksum, destination"
    )
    args = parser.parse_args(argv)
    places = Places.resolve(args.root)
    if args.list:
        print(listing(places))
        return 0
    if not args.names:
        parser.error("name at least one item or group, e.g. 'voc vgg16-caffe' (--list shows them all)")
    try:
        items = resolve_names(args.names)
    except UnknownItemError as error:
        parser.error(str(error))
    given_mirror = args.mirror if args.mirror != os.environ.get("FCN_MIRROR") else None  # $FCN_MIRROR stays
    failed: set[str] = set()
    for item in items:
        print(f"{item.name}: {item.title} ({item.file}{f', {item.size}' if item.size else ''})", flush=True)
        try:
            if args.dry_run:
                print("\n".join(plan(item, places, args.mirror)))
            else:
                install(item, places, mirror=args.mirror, say=lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            error_line(
                PROG, f"{item.name}: interrupted; run the same command again to resume where it stopped"
            )
            return 130
        except (AllSourcesFailed, DownloadError, OSError) as error:
            failed.add(item.name)
            error_line(PROG, f"{item.name}: {_failure(error, item, places, given_mirror)}")
    if args.dry_run:
        return 1 if failed else 0
    lines, problems = next_steps(items, places, failed, given_mirror)
    if lines:
        print("\n".join(lines))
    if failed:
        print(f"{len(failed)} of {len(items)} items not in place: {', '.join(sorted(failed))}")
    return 1 if failed or problems else 0


__all__ = ["check_dataset", "download_command", "listing", "main", "next_steps"]
