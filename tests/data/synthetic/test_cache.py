"""The synthetic-dataset cache: atomic writes, reuse by parameters, mismatches and foreign folders refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_lightning.data.synthetic import (
    MANIFEST_NAME,
    SceneConfig,
    SyntheticDatasetMismatchError,
    is_complete,
    write_dataset,
)

CONFIG = SceneConfig(image_size=32)


def populate_files(count: int, fail_at: int | None = None):
    """A writer that writes ``count`` files, failing half-way when ``fail_at`` is set."""

    def populate(folder: Path, config: SceneConfig) -> dict[str, int]:
        for i in range(count):
            if i == fail_at:
                raise RuntimeError("disk full")
            (folder / f"{i}.txt").write_text(str(i))
        return {"files": count}

    return populate


def test_interrupted_write_leaves_nothing_and_a_rerun_completes(tmp_path):
    parent = tmp_path / "cache"
    parent.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        write_dataset(parent / "data", CONFIG, populate_files(5, fail_at=3), generator="test")
    assert list(parent.iterdir()) == []  # neither the dataset nor a temporary folder
    root = write_dataset(parent / "data", CONFIG, populate_files(5), generator="test")
    assert is_complete(root) and [p.name for p in parent.iterdir()] == ["data"]
    assert sorted(p.name for p in root.iterdir()) == [*(f"{i}.txt" for i in range(5)), MANIFEST_NAME]


def test_existing_dataset_is_reused_and_a_mismatch_refused(tmp_path):
    root = write_dataset(tmp_path / "data", CONFIG, populate_files(2), generator="test")
    before = (root / MANIFEST_NAME).stat().st_mtime_ns
    assert write_dataset(tmp_path / "data", CONFIG, populate_files(9), generator="test") == root
    assert (root / MANIFEST_NAME).stat().st_mtime_ns == before and not (root / "8.txt").exists()
    other = SceneConfig(image_size=32, seed=5)
    with pytest.raises(SyntheticDatasetMismatchError, match="seed: existing 0, requested 5"):
        write_dataset(tmp_path / "data", other, populate_files(2), generator="test")
    write_dataset(tmp_path / "data", other, populate_files(3), generator="test", overwrite=True)
    assert (root / "2.txt").is_file()


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a complete synthetic dataset"):
        write_dataset(tmp_path / "data", CONFIG, populate_files(1), generator="test")
    assert (tmp_path / "data" / "mine.txt").read_text() == "precious"


def test_fingerprint_changes_with_every_parameter():
    base = SceneConfig()
    changed = [
        SceneConfig(seed=1),
        SceneConfig(image_size=64),
        SceneConfig(noise=2.0),
        SceneConfig(thin_parts=False),
        SceneConfig(object_size=(0.2, 0.5)),
    ]
    prints = {c.fingerprint() for c in changed}
    assert base.fingerprint() not in prints and len(prints) == len(changed)
    assert SceneConfig(image_size=96).fingerprint() == base.fingerprint()  # int and (H, W) are one size
