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
from tests.helpers import as_if_on_cuda, config_args, tiny_run_args

CONFIGS = Path(__file__).parents[2] / "configs"
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
        "eval_cudnn_benchmark": False,
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
        ({"compile": 1}, "speed.compile must be true, false or null"),
        ({"compile_mode": "fast", "compile": True}, "speed.compile_mode must be one of"),
        ({"compile_mode": "max-autotune", "compile": False}, "needs speed.compile true or null"),
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


def _on_cuda(datamodule) -> L.Trainer:
    """A CPU trainer that SpeedSwitches takes for a CUDA one, with ``datamodule`` attached."""
    trainer = as_if_on_cuda(_trainer())
    trainer._data_connector.attach_datamodule(FCN32s(**TINY), datamodule=datamodule)
    return trainer


@pytest.mark.parametrize(
    ("data", "train", "evaluation", "compiled", "why"),
    [
        ({}, False, False, False, "whole images of varying sizes"),
        ({"crop_size": 64}, True, False, False, "random crops of 64x64"),
        ({"batch_size": 4}, True, False, False, "size buckets"),
        ({"pad_to": 96}, True, True, True, "every image padded to 96x96"),
    ],
)
def test_on_cuda_autotuning_and_compile_default_on_only_where_shapes_repeat(
    tmp_path, data, train, evaluation, compiled, why
):
    from fcn_lightning.data import SyntheticVOCDataModule

    module = SyntheticVOCDataModule(root=str(tmp_path), **data)
    switches = SpeedSwitches()
    settings = switches.resolve(_on_cuda(module))
    assert (settings["cudnn_benchmark"], settings["eval_cudnn_benchmark"]) == (train, evaluation)
    assert settings["compile"] is compiled and settings["channels_last"]
    assert why in " ".join(switches.reasons) and len(switches.reasons) == 2  # autotuning, compile
    assert SpeedSwitches(cudnn_benchmark=False, compile=False).resolve(_on_cuda(module))["compile"] is False


def test_the_validation_inside_a_fit_autotunes_by_its_own_shapes(tmp_path):
    switches = SpeedSwitches()
    switches.applied = {"cudnn_benchmark": True, "eval_cudnn_benchmark": False}
    before = torch.backends.cudnn.benchmark
    trainer = _trainer()
    trainer.state.fn = "fit"
    try:
        switches.on_validation_start(trainer, None)  # type: ignore[arg-type]
        assert torch.backends.cudnn.benchmark is False
        switches.on_validation_end(trainer, None)  # type: ignore[arg-type]
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before


def test_deterministic_on_cuda_is_refused_in_one_line_at_build_time(monkeypatch, capsys):
    import fcn_lightning.training.speed as speed

    monkeypatch.setattr(speed, "runs_on_cuda", lambda trainer: True)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    "fit",
                    "--config",
                    str(CONFIGS / "synthetic/base.yaml"),
                    "--config",
                    str(CONFIGS / "synthetic/fcn32s.yaml"),
                    "--model.init_args.width",
                    "0.0625",
                    "--trainer.logger",
                    "false",
                    "--trainer.deterministic",
                    "true",
                ]
            )
    finally:
        torch.use_deterministic_algorithms(False)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [x for x in err if "deterministic" in x]  # the reason, whole, on the error's one line
    assert "error: " in line and "trainer.deterministic=true cannot run on CUDA" in line, err
    assert "bilinear upsampling" in line and "deterministic: warn" in line
    trainer = _trainer(deterministic="warn")  # warn-only runs, and so does true on a CPU
    try:
        speed.check_deterministic(trainer)
    finally:
        torch.use_deterministic_algorithms(False)
