"""The speed switches do what they say, default by device, come back off after the run, refuse bad values."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from fcn_lightning import FCN32s
from fcn_lightning.cli import main
from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.training.speed import SpeedSwitches
from tests.helpers import config_args, tiny_run_args

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = {"num_classes": 3, "width": 0.0625, "batch_norm": True}


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, **kwargs)


def _is_nhwc(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def test_defaults_on_the_cpu_leave_layout_and_autotuning_off():
    switches, model = SpeedSwitches(), FCN32s(**TINY)
    switches.setup(_trainer(), model, "fit")
    assert switches.applied == {
        "channels_last": False,
        "cudnn_benchmark": False,
        "compile": False,
        "compile_mode": None,
        "threads": None,
    }
    assert model.net.trunk.block1.conv1_1.weight.is_contiguous()


def test_channels_last_converts_parameters_and_every_batchs_images():
    switches, model = SpeedSwitches(channels_last=True), FCN32s(**TINY)
    switches.setup(_trainer(), model, "fit")
    assert _is_nhwc(model.net.trunk.block1.conv1_1.weight) and _is_nhwc(model.net.trunk.block5.conv5_3.weight)
    batch = {"image": torch.randn(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8, dtype=torch.long)}
    switches.on_train_batch_start(None, model, batch, 0)  # type: ignore[arg-type]
    assert _is_nhwc(batch["image"]) and batch["mask"].is_contiguous()


def test_a_fit_runs_with_nhwc_inputs_and_restores_the_global_settings(one_thread):
    torch.manual_seed(0)
    seen: list[bool] = []
    model = FCN32s(**TINY, loss_reduction="mean", optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    model.net.register_forward_pre_hook(lambda _, args: seen.append(_is_nhwc(args[0])))
    data = [{"image": torch.randn(3, 32, 32), "mask": torch.randint(3, (32, 32))} for _ in range(2)]
    cudnn_before = torch.backends.cudnn.benchmark
    switches = SpeedSwitches(channels_last=True, cudnn_benchmark=not cudnn_before, threads=2)
    trainer = _trainer(
        max_steps=1, callbacks=[switches], enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, DataLoader(data, batch_size=2))
    assert trainer.global_step == 1 and seen == [True]
    assert switches.applied["cudnn_benchmark"] is not cudnn_before and switches.applied["threads"] == 2
    assert torch.backends.cudnn.benchmark is cudnn_before and torch.get_num_threads() == 1  # put back


def test_cudnn_benchmark_sets_the_flag_until_teardown():
    before = torch.backends.cudnn.benchmark
    switches, model = SpeedSwitches(cudnn_benchmark=True), FCN32s(**TINY)
    trainer = _trainer()
    switches.setup(trainer, model, "fit")
    assert torch.backends.cudnn.benchmark is True
    switches.teardown(trainer, model, "fit")
    assert torch.backends.cudnn.benchmark is before


def test_compile_compiles_the_net_in_place_keeping_the_state_dict(monkeypatch):
    """The wiring only: compiling a forward takes about a minute on a CPU."""
    model = FCN32s(**TINY)
    keys = list(model.state_dict())
    SpeedSwitches(compile=True).setup(_trainer(), model, "fit")
    assert model.net._compiled_call_impl is not None and list(model.state_dict()) == keys
    asked: dict = {}
    other = FCN32s(**TINY)
    monkeypatch.setattr(other.net, "compile", lambda **kwargs: asked.update(kwargs))
    SpeedSwitches(compile=True, compile_mode="max-autotune").setup(_trainer(), other, "fit")
    assert asked == {"mode": "max-autotune", "dynamic": False}  # one graph per input shape


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels_last": "yes"}, "speed.channels_last must be true, false or null"),
        ({"compile": 1}, "speed.compile must be true or false"),
        ({"compile_mode": "fast", "compile": True}, "speed.compile_mode must be one of"),
        ({"compile_mode": "max-autotune"}, "needs speed.compile=true"),
        ({"threads": 0}, "speed.threads must be a whole number >= 1"),
    ],
)
def test_bad_values_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpeedSwitches(**kwargs)


def test_autotuning_conflicts_with_a_deterministic_trainer():
    trainer = _trainer(deterministic=True)
    try:
        with pytest.raises(ValueError, match=r"conflicts with trainer\.deterministic=true"):
            SpeedSwitches(cudnn_benchmark=True).setup(trainer, FCN32s(**TINY), "fit")
    finally:
        torch.use_deterministic_algorithms(False)


def _cli(*overrides: str) -> FCNLightningCLI:
    configs = config_args("synthetic/base.yaml", "synthetic/fcn32s.yaml")
    return FCNLightningCLI(args=[*configs, *tiny_run_args(), *overrides], run=False)


def test_the_cli_has_a_speed_section():
    cli = _cli("--speed.channels_last", "true", "--speed.threads", "1", "--speed.compile", "false")
    (switches,) = [c for c in cli.trainer.callbacks if isinstance(c, SpeedSwitches)]
    assert (switches.channels_last, switches.threads, switches.compile) == (True, 1, False)
    assert switches.cudnn_benchmark is None  # auto


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--speed.channels_last", "maybe"], "speed.channels_last"),
        (["--speed.compile_mode", "fast"], "speed.compile_mode"),
        (["--speed.threads", "0"], "speed.threads must be a whole number >= 1"),
    ],
)
def test_bad_cli_values_name_the_setting(override, message, tmp_path, capsys):
    args = ["fit", *config_args("synthetic/base.yaml", "synthetic/fcn32s.yaml")]
    args += [
        "--data.init_args.root",
        str(tmp_path / "data"),
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *override])
    assert exit_info.value.code != 0
    printed = capsys.readouterr().err
    assert message in printed and "Namespace(" not in printed
    assert not (tmp_path / "run").exists()


def test_channels_last_reaches_the_images_of_every_loop():
    switches = SpeedSwitches(channels_last=True)
    switches.applied = {"channels_last": True}  # as setup leaves it
    hooks = (
        "on_train_batch_start",
        "on_validation_batch_start",
        "on_test_batch_start",
        "on_predict_batch_start",
    )
    for hook in hooks:
        batch = {"image": torch.zeros(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8, dtype=torch.long)}
        getattr(switches, hook)(None, None, batch, 0)
        assert batch["image"].is_contiguous(memory_format=torch.channels_last), hook
        assert not batch["image"].is_contiguous(), hook
