"""``benchmarks/gpu_env.py``: wheels unpacked as ``pip install --target`` would (importable files only,
executables kept executable, nothing outside the target); the rehearsal's wheels are the pinned versions;
its site-packages links to everything but the left-out distributions' files, a shared namespace split
file by file. The whole layout is exercised by the rehearsal (``test_gpu_acceptance.py``)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

from tests.helpers import child_env


def write_wheel(path: Path, members: dict[str, tuple[str, int]]) -> Path:
    """A wheel (zip) of ``name -> (text, mode)``."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, (text, mode) in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, text)
    return path


def test_unpack_puts_the_importable_files_under_the_target_and_keeps_executables(bench: ModuleType, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(
        wheels / "tool-1.0-py3-none-any.whl",
        {
            "tool/__init__.py": ("VALUE = 7\n", 0o644),
            "tool/bin/service": ("#!/bin/sh\necho served\n", 0o755),
            "tool-1.0.data/purelib/tool_extra.py": ("EXTRA = 8\n", 0o644),
            "tool-1.0.data/scripts/tool-cli": ("#!/bin/sh\n", 0o755),
            "tool-1.0.dist-info/METADATA": ("Name: tool\nVersion: 1.0\n", 0o644),
        },
    )
    site = tmp_path / "site"
    assert bench.unpack(wheels, site) == [wheels / "tool-1.0-py3-none-any.whl"]
    done = subprocess.run(
        [sys.executable, "-c", "import tool, tool_extra; print(tool.VALUE + tool_extra.EXTRA)"],
        env=child_env(site),
        capture_output=True,
        text=True,
    )
    assert done.stdout == "15\n", done.stderr
    assert subprocess.run([site / "tool/bin/service"], capture_output=True, text=True).stdout == "served\n"
    assert (site / "tool-1.0.dist-info/METADATA").is_file()
    assert not list(site.rglob("tool-cli")) and not (site / "tool-1.0.data").exists()


def test_unpack_refuses_a_member_outside_the_target_and_an_empty_folder(bench: ModuleType, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with pytest.raises(bench.EnvError, match="no wheels in"):
        bench.unpack(wheels, tmp_path / "site")
    write_wheel(wheels / "evil-1.0-py3-none-any.whl", {"../evil.py": ("", 0o644)})
    with pytest.raises(bench.EnvError, match=r"a wheel member outside the target: \.\./evil\.py"):
        bench.unpack(wheels, tmp_path / "site")
    assert not (tmp_path / "evil.py").exists()


def test_the_rehearsal_packs_only_the_pinned_versions(bench: ModuleType, tmp_path):
    installed = importlib.metadata.version("jsonargparse")
    with pytest.raises(bench.EnvError, match=f"pins jsonargparse==0.0.1, this environment has {installed}"):
        bench.pack_installed({"jsonargparse": "0.0.1"}, tmp_path)
    [wheel] = bench.pack_installed({"sniffio": importlib.metadata.version("sniffio")}, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "sniffio/__init__.py" in names and any(n.endswith(".dist-info/METADATA") for n in names)
    assert set(bench.pinned()) >= {"jsonargparse", "omegaconf", "albumentations", "wandb"}


def test_the_rehearsal_links_everything_but_the_left_out_files(bench: ModuleType, tmp_path):
    site = tmp_path / "site"
    for name in (
        "google/protobuf/x.py",
        "google/api/y.py",
        "wandb/__init__.py",
        "numpy/__init__.py",
        "six.py",
    ):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text("")
    left_out = bench._prefixes([PurePosixPath("google/api/y.py"), PurePosixPath("wandb/__init__.py")])
    kept = bench._prefixes([PurePosixPath("google/protobuf/x.py"), PurePosixPath("six.py")])
    dest = tmp_path / "venv-site"
    bench._link_tree(site, dest, left_out, kept)
    assert sorted(p.name for p in dest.iterdir()) == ["google", "numpy", "six.py"]  # numpy: nobody's
    assert not (dest / "google").is_symlink() and [p.name for p in (dest / "google").iterdir()] == [
        "protobuf"
    ]
    assert (dest / "google" / "protobuf").resolve() == site / "google" / "protobuf"
