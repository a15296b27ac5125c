"""The configs of real data (the paper's datasets and your own folder) train on one GPU, as the paper's
tables: none lets Lightning spread a run over every GPU of the machine (which would change images per
step, and so the recipe), and the README says how to scale a recipe to N GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[1]
CONFIGS = REPO / "configs"
#: Every folder of configs that is not a synthetic dataset's.
REAL_DATASETS = tuple(sorted(d.name for d in CONFIGS.iterdir() if d.is_dir() and "synthetic" not in d.name))
#: Every training config of the real datasets (staged plans only list them).
REAL_CONFIGS = sorted(
    p
    for d in REAL_DATASETS
    for p in (CONFIGS / d).rglob("*.yaml")
    if "stages" not in (yaml.safe_load(p.read_text()) or {})
)


def trainer_devices(path: Path) -> object:
    """``trainer.devices`` of a config as used: its own, else its folder's (or the nearest) base.yaml's."""
    own = (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}
    if "devices" in own:
        return own["devices"]
    for folder in path.parents:
        base = folder / "base.yaml"
        if base.is_file() and base != path:
            return trainer_devices(base)
    return None


@pytest.mark.parametrize("path", REAL_CONFIGS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_real_dataset_configs_pin_one_device(path):
    assert trainer_devices(path) == 1


def test_no_real_dataset_config_is_left_out():
    assert set(REAL_DATASETS) == {"voc", "context", "nyud", "siftflow", "folder"}
    assert len(REAL_CONFIGS) >= 25 and all("synthetic" not in p.parts[-2] for p in REAL_CONFIGS)


def test_the_readme_says_how_to_scale_to_several_gpus():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Several GPUs") :]
    section = section[: section.index("\n#", 1)]
    for needed in ("--trainer.devices", "images per step", "learning rate", "max_steps", "sync_batchnorm"):
        assert needed in section, needed
