"""What makes a run that run: the settings a checkpoint records, and how two runs' settings are compared."""

from __future__ import annotations

from fcn_lightning.training.identity import (
    describe_differences,
    differences,
    record_from_hyperparameters,
    run_settings,
)


def fit_config(**changes: object) -> dict:
    """A resolved ``fit`` config as LightningCLI dumps it (the parts that matter here)."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "gpu",
            "devices": "auto",
            "precision": "bf16-mixed",
            "max_steps": 100,
            "default_root_dir": "runs/a",
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger"},
            "enable_progress_bar": True,
            "log_every_n_steps": 50,
            "val_check_interval": 10,
        },
        "model": {
            "class_path": "fcn_lightning.FCN32s",
            "init_args": {
                "width": 0.125,
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001}},
            },
        },
        "data": {
            "class_path": "fcn_lightning.data.VOCDataModule",
            "init_args": {"root": "/data/voc", "batch_size": 8, "num_workers": 4, "crop_size": [24, 24]},
        },
        "checkpoint": {"dirpath": "runs/a/checkpoints", "monitor": "val/mean_iu", "mode": "max"},
        "resume": {"auto": True, "every_n_train_steps": 500},
        "divergence": {"check_every_n_steps": 50},
        "ckpt_path": None,
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    return config


def test_a_run_is_its_settings_less_where_it_goes_how_it_is_shown_and_how_fast():
    base = run_settings(fit_config(), world_size=1)
    same = {
        "trainer__default_root_dir": "elsewhere",
        "trainer__logger": False,
        "trainer__enable_progress_bar": False,
        "trainer__log_every_n_steps": 1,
        "trainer__accelerator": "cpu",
        "trainer__devices": 1,
        "trainer__max_steps": 200,  # compared on its own: a longer run is the same run trained on
        "data__init_args__root": "/elsewhere/voc",
        "data__init_args__num_workers": 0,
        "checkpoint__dirpath": "elsewhere/checkpoints",
        "resume__every_n_train_steps": 1,
        "divergence__check_every_n_steps": 1,
        "ckpt_path": "x.ckpt",
    }
    for key, value in same.items():
        assert run_settings(fit_config(**{key: value}), world_size=1) == base, key
    other = {
        "seed_everything": 1,
        "trainer__precision": "32-true",
        "trainer__val_check_interval": 20,
        "model__class_path": "fcn_lightning.FCN16s",
        "model__init_args__width": 1.0,
        "data__init_args__batch_size": 2,
        "data__init_args__crop_size": [32, 32],
        "checkpoint__monitor": "val/loss",
    }
    for key, value in other.items():
        assert run_settings(fit_config(**{key: value}), world_size=1) != base, key
    assert run_settings(fit_config(), world_size=2) != base  # each step trains on both processes' batches


def test_differences_name_each_setting_with_both_values():
    saved = run_settings(fit_config(), world_size=1)
    current = run_settings(
        fit_config(
            model__init_args__optimizer={"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.05}}
        ),
        world_size=1,
    )
    current["data"]["init_args"]["batch_size"] = 2
    found = differences(saved, current)
    assert describe_differences(found) == "optimizer lr 0.001 (this command: 0.05), batch_size 8 (2)"


def test_a_class_moved_between_modules_is_the_same_class_and_another_class_is_named_alone():
    saved = run_settings(fit_config(model__class_path="fcn_lightning.systems.FCN32s"))
    assert differences(saved, run_settings(fit_config())) == []
    sgd = {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-10, "momentum": 0.99}}
    found = differences(run_settings(fit_config()), run_settings(fit_config(model__init_args__optimizer=sgd)))
    assert describe_differences(found) == "optimizer torch.optim.AdamW (this command: torch.optim.SGD)"


def test_settings_only_one_side_records_are_not_compared():
    saved = run_settings(fit_config())
    del saved["model"]["init_args"]["width"]  # an option another version of the package did not have
    current = run_settings(fit_config())
    current["data"]["init_args"]["new_option"] = True
    assert differences(saved, current) == []


def test_a_checkpoint_without_a_run_record_is_compared_on_its_model_and_data_hyperparameters():
    checkpoint = {
        "hyper_parameters": {
            "_class_path": "fcn_lightning.systems.FCN32s",
            "width": 0.125,
            "num_classes": 21,
            "input_normalization": "imagenet",
        },
        "datamodule_hyper_parameters": {
            "_class_path": "fcn_lightning.data.VOCDataModule",
            "root": "/old/voc",
            "batch_size": 8,
            "num_workers": 0,
        },
    }
    saved = record_from_hyperparameters(checkpoint)
    current = run_settings(fit_config())
    current["model"]["init_args"]["input_normalization"] = None  # left to the weights: not a difference
    assert differences(saved, current, skip_unset=True) == []
    current["data"]["init_args"]["batch_size"] = 2
    assert (
        describe_differences(differences(saved, current, skip_unset=True)) == "batch_size 8 (this command: 2)"
    )


def test_a_size_given_as_one_number_is_the_same_as_that_number_twice():
    saved = run_settings(fit_config(data__init_args__crop_size=[24, 24]))
    assert differences(saved, run_settings(fit_config(data__init_args__crop_size=24))) == []
    assert differences(saved, run_settings(fit_config(data__init_args__crop_size=32)))


def test_a_callback_that_can_change_results_is_part_of_the_run_and_one_that_records_is_not():
    base = run_settings(fit_config(), world_size=1)
    recording = [
        {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"},
        {"class_path": "fcn_lightning.callbacks.WandbValidationMedia", "init_args": {"num_images": 4}},
    ]
    assert run_settings(fit_config(trainer__callbacks=recording), world_size=1) == base
    stopping = {
        "class_path": "lightning.pytorch.callbacks.EarlyStopping",
        "init_args": {"monitor": "val/mean_iu", "patience": 3},
    }
    found = differences(
        base, run_settings(fit_config(trainer__callbacks=[*recording, stopping]), world_size=1)
    )
    assert describe_differences(found) == (
        "callbacks none (this command: [EarlyStopping(monitor=val/mean_iu, patience=3)])"
    )
    patient = {**stopping, "init_args": {**stopping["init_args"], "patience": 5}}
    found = differences(
        run_settings(fit_config(trainer__callbacks=[stopping])),
        run_settings(fit_config(trainer__callbacks=[patient])),
    )
    assert describe_differences(found) == (
        "callbacks [EarlyStopping(monitor=val/mean_iu, patience=3)] "
        "(this command: [EarlyStopping(monitor=val/mean_iu, patience=5)])"
    )


class LogsSomething:
    """A user's own callback that only records, and says so."""

    changes_results = False


class ChangesTheLoss:
    """A user's own callback that says nothing: it may change results."""


def test_a_users_callback_that_says_it_only_records_is_not_part_of_the_run():
    base = run_settings(fit_config(), world_size=1)
    says = {"class_path": f"{__name__}.LogsSomething", "init_args": {"every": 3}}
    assert run_settings(fit_config(trainer__callbacks=[says]), world_size=1) == base
    silent = {"class_path": f"{__name__}.ChangesTheLoss"}
    unknown = {"class_path": "no_such_module.Callback"}  # cannot be asked: counted as changing results
    found = differences(
        base, run_settings(fit_config(trainer__callbacks=[says, silent, unknown]), world_size=1)
    )
    assert describe_differences(found) == "callbacks none (this command: [ChangesTheLoss(), Callback()])"
