"""W&B logging: offline by itself without a key or a server, never a crash; the run holds what people see."""

from __future__ import annotations

import json
import logging
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcn_lightning import loggers
from fcn_lightning.training.identity import RUN_KEY
from fcn_lightning.training.loggers import FCNWandbLogger, wandb_offline_reason
from tests.helpers import child_env, config_args, generator_args, tiny_run_args

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.fixture
def no_wandb_login(tmp_path, monkeypatch):
    """A home without ``~/.netrc``, no key, no mode, and no socket may be opened."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("the logger opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(FCNWandbLogger, "_told", set())  # each test's logger says why it is offline


def test_without_a_key_it_goes_offline_without_touching_the_network(no_wandb_login, caplog):
    assert "no W&B API key" in wandb_offline_reason()
    with caplog.at_level(logging.WARNING, logger="fcn_lightning.training.loggers"):
        logger = FCNWandbLogger(project="p", save_dir=".", log_model=True)
    assert logger._offline and not logger._log_model  # uploading checkpoints is impossible offline
    assert "logging offline" in caplog.text and "log_model off" in caplog.text


def test_a_key_without_a_server_goes_offline_and_with_one_stays_online(no_wandb_login, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr(loggers, "_reachable", lambda host, timeout=3.0: False)
    assert wandb_offline_reason() == "the W&B server https://api.wandb.ai cannot be reached"
    monkeypatch.setattr(loggers, "_reachable", lambda host, timeout=3.0: True)
    assert wandb_offline_reason() is None and not FCNWandbLogger(project="p")._offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline_reason() == "WANDB_MODE is offline"


def test_a_netrc_login_counts_as_a_key(no_wandb_login, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    monkeypatch.setattr(loggers, "_reachable", lambda host, timeout=3.0: True)
    assert wandb_offline_reason() is None


def read_wandb_records(path: Path) -> list:
    """The protobuf records of a ``.wandb`` run file: a 7-byte header, then LevelDB-log framed records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunk, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def test_a_run_with_the_wandb_config_and_no_login_finishes_offline_with_everything(tmp_path):
    env = {k: v for k, v in child_env().items() if not k.startswith("WANDB_")}
    env |= {"HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "fcn_lightning.cli", "fit"]
    args += config_args("synthetic/base.yaml", "synthetic/fcn32s.yaml", "wandb.yaml")
    args += ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.batch_size", "2"]
    args += generator_args(image_size=48, num_train=4, num_val=2)
    args += tiny_run_args(steps=2, val_every=2, logger=None, progress_bar=False, root_dir=tmp_path / "run")
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, stdin=None
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "wandb").exists()  # the W&B files go into the run's folder, as the checkpoints
    [run_dir] = (tmp_path / "run" / "wandb").glob("offline-run-*")
    printed = done.stdout + done.stderr
    assert printed.count("wandb sync") == 1  # says how to upload it (W&B's own line), once
    assert f"wandb sync {run_dir}" in printed  # the folder as given: --trainer.default_root_dir is absolute
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    run_id = run_dir.name.rsplit("-", 1)[-1]
    assert last[RUN_KEY]["logger"] == {"class": "FCNWandbLogger", "version": run_id}  # a resume continues it
    (summary,) = [line for line in done.stdout.splitlines() if line.startswith("fit: ")]
    assert f"Checkpoints in {tmp_path / 'run' / 'checkpoints'}" in summary, summary
    assert f"Logs in {run_dir}." in summary, summary
    assert not (tmp_path / "config.yaml").exists()  # nothing dropped into the working directory
    assert (run_dir / "files" / "config.yaml").is_file()  # the resolved config travels with the run

    records = read_wandb_records(next(run_dir.glob("run-*.wandb")))
    history = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            history |= {
                item.key or "/".join(item.nested_key): item.value_json for item in record.history.item
            }
    for score in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert 0 <= json.loads(history[f"val/{score}"]) <= 1, score
    assert "val/iu/person" in history
    config_keys = {
        update.key for r in records if r.WhichOneof("record_type") == "config" for update in r.config.update
    }
    assert {"model", "data", "trainer"} <= config_keys  # the resolved CLI config

    files = run_dir / "files" / "media"
    [table] = (files / "table/val").glob("per_class_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["class", "IU", "accuracy"] and len(content["data"]) == 21
    assert list((files / "images/val").glob("confusion_*.png"))
    assert len(list((files / "images/val").glob("examples_*.png"))) == 2  # both validation images
    # a predicted and a true mask per image; W&B stores identical masks once (e.g. two blank predictions)
    assert json.loads(history["val/examples/count"]) == 2 and "val/examples/all_masks" in history
    assert len(list((files / "images/mask/val").glob("examples_*.mask.png"))) >= 2
