"""A folder shaped like "Your own data" (README): phone-photo-like JPEGs stored sideways or upside down with
the EXIF tag that turns them upright, 0 / 255 masks as a labelling tool exports them, ``classes.txt`` and
``new/`` photos to predict. ``python -m fcn_lightning.data.synthetic.phone data/phone-photos``."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fcn_lightning.io import publish, temporary_path

__all__ = ["ORIENTATIONS", "write_phone_photos"]

#: EXIF orientation tag -> how many quarter turns counter-clockwise take the shown photo to the stored
#: pixels (numpy's ``rot90``): 6 and 8 are portrait photos stored sideways, 3 upside down, 1 upright.
ORIENTATIONS = {6: 1, 1: 0, 8: -1, 3: 2}
_ORIENTATION_TAG = 0x0112


def draw_photo(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo as shown (RGB uint8) and its mask (1: a red-orange blob on a green-grey background)."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    light = 0.75 + 0.35 * (yy / height) * rng.uniform(0.5, 1.0)
    ground = np.array([90, 120, 80], np.float32) * rng.uniform(0.8, 1.2, 3)
    image = ground * light[..., None] + rng.normal(0, 10, (height, width, 3))
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    colour = np.array([210, rng.uniform(60, 130), 40], np.float32)
    image[mask] = colour * light[mask][:, None] + rng.normal(0, 10, (int(mask.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def save_phone_jpeg(path: Path, shown: np.ndarray, orientation: int) -> None:
    """``shown`` stored as the sensor saw it, with the orientation tag that turns it back."""
    tags = Image.Exif()
    tags[_ORIENTATION_TAG] = orientation
    stored = np.ascontiguousarray(np.rot90(shown, ORIENTATIONS[orientation]))
    Image.fromarray(stored).save(path, format="JPEG", quality=92, exif=tags.tobytes())


def write_phone_photos(
    root: str | Path, photos: int = 12, size: tuple[int, int] = (64, 48), new: int = 3, seed: int = 0
) -> Path:
    """Write the example folder at ``root`` (a new one, atomically): ``photos`` photos with masks and ``new``
    without, each ``size`` (long side, short side) as shown, portrait or landscape by its tag."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists: the example is written into a new folder only")
    long, short = size
    if photos < 2 or new < 0 or short < 8 or long < short:
        raise ValueError(
            f"photos >= 2, new >= 0 and a size (long, short) with long >= short >= 8, got {photos}, {new}, "
            f"{size}"
        )
    rng = np.random.default_rng(seed)
    folder = temporary_path(root)
    try:
        for sub in ("images", "masks", "new"):
            (folder / sub).mkdir(parents=True)
        (folder / "classes.txt").write_text("background\nobject\n")
        orientations = list(ORIENTATIONS)
        for number in range(photos + new):
            orientation = orientations[number % len(orientations)]
            portrait = ORIENTATIONS[orientation] % 2 == 1
            shown, mask = draw_photo(rng, *((long, short) if portrait else (short, long)))
            stem = f"IMG_{number + 1:04d}"
            if number < photos:
                save_phone_jpeg(folder / "images" / f"{stem}.JPG", shown, orientation)
                Image.fromarray(mask * 255).save(folder / "masks" / f"{stem}.png")  # a 0/255 export
            else:
                save_phone_jpeg(folder / "new" / f"{stem}.JPG", shown, orientation)
        publish(folder, root)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fcn_lightning.data.synthetic.phone",
        description="Write an example folder of phone-photo-like JPEGs (EXIF-rotated) and 0/255 masks.",
    )
    parser.add_argument("root", help="the folder to write (must not exist)")
    parser.add_argument("--photos", type=int, default=12, help="photos with masks (default 12)")
    parser.add_argument("--new", type=int, default=3, help="photos without masks, in new/ (default 3)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 48), metavar=("LONG", "SHORT"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        root = write_phone_photos(args.root, args.photos, tuple(args.size), args.new, args.seed)
    except (FileExistsError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except OSError as e:  # a parent that is no folder, or not writable: the folder asked for, named
        parser.exit(2, f"{parser.prog}: error: cannot write {args.root}: {e.strerror or e}\n")
    print(f"{args.photos} photos with masks in {root}/images and {root}/masks, {args.new} more in {root}/new")


if __name__ == "__main__":
    main()
