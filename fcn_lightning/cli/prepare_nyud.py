"""``fcn-lightning prepare-nyud --root R``: write every missing HHA PNG of a NYUDv2 tree."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from fcn_lightning.cli.errors import command_parser, fail


def _camera(text: str) -> tuple[float, ...]:
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fx,fy,cx,cy (pixels), got {text!r}") from None
    return fx, fy, cx, cy


def main(argv: Sequence[str]) -> int:
    """``fcn-lightning prepare-nyud``: write the missing HHA PNGs of a NYUDv2 tree; returns 0."""
    parser = command_parser(
        "prepare-nyud",
        "Compute HHA (disparity, height, angle with gravity) from data/depth/img_<id>.png for "
        "every id whose data/hha/img_<id>.png is missing (holes from data/rawdepth/img_<id>.png where the "
        "tree has it). Resumable: rerun after an interruption.",
    )
    parser.add_argument("--root", required=True, help="NYUDv2 root (holding data/depth)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument(
        "--camera",
        type=_camera,
        default=None,
        help="fx,fy,cx,cy of the images as stored, 0-based pixels (default: the NYU Kinect colour camera: "
        "640x480 frames, and the archive's 425x560 frames as cut from them at rows 45-469, columns "
        "40-599, principal point moved by (-40, -45); any other size needs this option)",
    )
    args = parser.parse_args(argv)
    from fcn_lightning.data.hha import NYU_KINECT, Camera  # torch: after --help has answered
    from fcn_lightning.data.prepare_nyud import prepare_nyud
    from fcn_lightning.data.readers import DatasetError

    camera = Camera(*args.camera, size=None) if args.camera else NYU_KINECT
    start = time.perf_counter()
    try:
        written = prepare_nyud(args.root, workers=args.workers, camera=camera)
    except (DatasetError, ValueError) as error:
        fail(parser.prog, str(error))
    seconds = time.perf_counter() - start
    rate = f" ({written / seconds:.1f} img/s)" if written and seconds > 0 else ""
    print(f"wrote {written} HHA images under {Path(args.root) / 'data' / 'hha'} in {seconds:.0f} s{rate}")
    return 0
