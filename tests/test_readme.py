"""README.md's "Using it" block runs as written, in order, in one directory: read from the README itself
(so this fails when the README drifts), run on a generated VOC tree and a thin Caffe VGG16, each command
shortened only by overrides appended to it (a thin net, 2 steps, no loader workers)."""

from __future__ import annotations

import glob
import re
import shlex

import numpy as np
import pytest
from PIL import Image

from fcn_lightning import FCN32s
from fcn_lightning.cli import main
from fcn_lightning.nets.caffe_proto import write_caffemodel
from tests.helpers import REPO, TINY_WIDTH, caffe_vgg16

#: What each command gets appended: a thin net (the width of the Caffe VGG16 written below), 2 steps with a
#: validation at the second, no loader workers (the configs' 4 cost more than the tiny data); for
#: check-data, the dataset's root in place of the README's /data/voc.
SHORTER = {
    "train": ["--model.init_args.width", str(TINY_WIDTH), "--trainer.max_steps", "2"],
    "quiet": ["--data.init_args.num_workers", "0", "--trainer.enable_progress_bar", "false"],
}


def using_it_commands() -> list[list[str]]:
    """The ``fcn-lightning`` command lines of the first bash block under "## Using it", as bash splits them
    (comments dropped, continued lines joined; globs expanded later, where they run)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Using it\n") :]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [c for c in commands if c]


README = REPO / "README.md"


def expanded(args: list[str]) -> list[str]:
    """Words with a ``*`` replaced by the files they match, as bash does; each must match one file."""
    out = []
    for arg in args:
        if "*" in arg:
            matches = sorted(glob.glob(arg))
            assert len(matches) == 1, f"{arg} matches {matches}"
            arg = matches[0]
        out.append(arg)
    return out


@pytest.mark.usefixtures("one_thread")
def test_the_using_it_block_runs_as_written_in_one_directory(
    synthetic_voc_root, tmp_path, monkeypatch, capsys
):
    commands = using_it_commands()
    assert [c[:2] for c in commands] == [
        ["fcn-lightning", "fit"],
        ["fcn-lightning", "fit"],
        ["fcn-lightning", "staged"],
        ["fcn-lightning", "validate"],
        ["fcn-lightning", "predict"],
        ["fcn-lightning", "check-data"],
    ]
    # The user's folder: the configs, a few images of their own, the data and weights where configs look.
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "my_images").mkdir()
    rng = np.random.default_rng(0)
    for name in ("street", "kitchen"):
        pixels = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "my_images" / f"{name}.jpg")
    weights = tmp_path.parent / f"{tmp_path.name}-weights"
    weights.mkdir()
    write_caffemodel(
        weights / "VGG_ILSVRC_16_layers.caffemodel",
        caffe_vgg16(FCN32s(num_classes=21, width=TINY_WIDTH).net.trunk),
    )
    monkeypatch.setenv("FCN_DATA", str(synthetic_voc_root.parent))  # configs: $FCN_DATA/voc
    monkeypatch.setenv("FCN_WEIGHTS", str(weights))
    monkeypatch.chdir(tmp_path)

    for command in commands:
        name, args = command[1], expanded(command[2:])
        if name in ("fit", "staged"):
            args += [*SHORTER["train"], "--trainer.val_check_interval", "2", *SHORTER["quiet"]]
        elif name in ("validate", "predict"):
            args += [*SHORTER["quiet"], "--model.init_args.width", str(TINY_WIDTH)]
        else:
            args += ["--data.init_args.root", str(synthetic_voc_root)]
        try:
            main([name, *args])
        except SystemExit as exit_:
            assert exit_.code == 0, (command, capsys.readouterr().err[-2000:])

    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["voc-fcn16s", "voc-fcn32s", "voc-staged"]
    for run in ("voc-fcn32s", "voc-fcn16s", "voc-staged/FCN-8s"):
        assert len(list((runs / run / "checkpoints").glob("best-*.ckpt"))) == 1, run
    assert (runs / "voc-staged" / "results.csv").is_file()
    predictions = tmp_path / "predictions"
    assert sorted(p.relative_to(predictions).as_posix() for p in predictions.rglob("*.png")) == [
        "kitchen.jpg.png",
        "overlays/kitchen.jpg.png",
        "overlays/street.jpg.png",
        "street.jpg.png",
    ]
    # nothing anywhere else: no lightning_logs, config.yaml or W&B folder in the working directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configs", "my_images", "predictions", "runs"]
