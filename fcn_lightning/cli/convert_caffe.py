"""Released Caffe FCNs as Lightning checkpoints (``fcn-lightning convert-caffe``): plain data with the
model's class path, so ``validate / test / predict --ckpt_path`` rebuild exactly this net (Caffe inputs,
which the data follow) from any config of the same dataset."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from fcn_lightning.cli.errors import class_meant, command_parser
from fcn_lightning.io import atomic_write
from fcn_lightning.nets.caffe import fixed_upsamplers_with_other_kernels, load_caffe_weights
from fcn_lightning.nets.caffe_proto import read_caffemodel
from fcn_lightning.nets.trunks import Trunk
from fcn_lightning.nets.weights import CAFFE
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.classes import MODEL_CLASSES, UnknownModelError, class_path, model_class

PROG = "fcn-lightning convert-caffe"
#: The models ``--variant`` names: those whose trunk the reference trained in Caffe (VGG16, CaffeNet).
CONVERT_SYSTEMS: dict[str, type[FCNSystem]] = {
    name: cls for name, cls in MODEL_CLASSES.items() if cls.spec.trunk.trained_in_caffe
}


#: The net options a config may set that shape the net the file must fill (RGB-D's 4 input channels).
NET_SHAPE = ("in_channels", "width")


def convert_caffe(
    caffemodel: str | os.PathLike,
    out: str | os.PathLike,
    cls: type[FCNSystem],
    num_classes: int,
    learned_upsamplers: list[str] | None = None,
    **net_options: Any,
) -> Path:
    """Load every layer of ``caffemodel`` by name into ``cls`` (Caffe inputs) and write it as a checkpoint. A
    converter never changes a weight: an upsampler whose kernel in the file is not bilinear (learned, as the
    CVPR paper's skips) makes the model's upsamplers learnable (``intermediate`` when only skips differ,
    else ``true``); those are recorded in the checkpoint and appended to ``learned_upsamplers``."""
    caffe = read_caffemodel(caffemodel)
    if cls.spec.trunk is Trunk.VGG16:  # explicit, so no config's setting overrides it
        net_options.setdefault("batch_norm", False)
    with warnings.catch_warnings():  # "starts from a trained FCN-16s ...": its weights come next
        warnings.filterwarnings("ignore", "FCN-.* starts from a trained")
        model = cls(num_classes=num_classes, input_normalization=CAFFE.name, **net_options)
        learned = unfit = fixed_upsamplers_with_other_kernels(model.net, caffe)
        for setting in ("intermediate", True):
            if not unfit:
                break
            options = net_options | {"learn_upsampling": setting}
            model = cls(num_classes=num_classes, input_normalization=CAFFE.name, **options)
            unfit = fixed_upsamplers_with_other_kernels(model.net, caffe)
    load_caffe_weights(model.net, caffe)
    if learned_upsamplers is not None:
        learned_upsamplers.extend(learned)
    # Unset arguments are left out so the config's stand (SIFT Flow's exclude_classes); init_from stays,
    # unset: the weights are in the checkpoint, whatever the config starts from.
    kept = {k: v for k, v in model.hparams.items() if (v is not None or k == "init_from") and k[0] != "_"}
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": {"_class_path": class_path(cls), **kept},
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
        "caffe_source": str(Path(caffemodel).resolve()),
        "caffe_learned_upsamplers": learned,
    }
    path = Path(out).expanduser()
    with atomic_write(path) as f:
        torch.save(checkpoint, f)
    return path


def model_of_configs(configs: Sequence[str]) -> tuple[str, int, dict[str, Any]]:
    """The model class path, the class count and the net's shape options (``in_channels``, ``width``)
    that ``configs`` train, as ``validate`` parses them."""
    from fcn_lightning.cli.lightning import DataCheckCLI, build

    cli = build(DataCheckCLI, [arg for config in configs for arg in ("--config", config)], prog=PROG)
    if cli.config.get("model") is None:
        cli.parser.error(f"no model in {', '.join(configs)}: give the config that names one, or --variant")
    init_args = cli.config.model.get("init_args") or {}
    shape = {name: init_args[name] for name in NET_SHAPE if init_args.get(name) is not None}
    return cli.config.model.class_path, cli.datamodule.num_classes, shape


def main(argv: Sequence[str]) -> Path:
    """``fcn-lightning convert-caffe MODEL.caffemodel --config BASE --config MODEL --out OUT.ckpt``."""
    parser = command_parser(
        "convert-caffe",
        "Convert a Caffe FCN (e.g. the released fcn8s-heavy-pascal.caffemodel) into a checkpoint "
        "that validate / test / predict load with --ckpt_path; its inputs are Caffe's (BGR, 0-255, mean "
        "subtracted) and the data follow them. Every layer of the net must be in the file, shapes equal; "
        "every weight is kept (an upsampler whose kernel is not bilinear becomes a learned one).",
    )
    parser.add_argument("caffemodel", help="the .caffemodel file")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="a config that trains the model, as validate takes them (the dataset's base.yaml, then the "
        "model's): the model and the class count are theirs",
    )
    parser.add_argument(
        "--variant",
        choices=sorted(CONVERT_SYSTEMS),
        help="the model (a name of fcn_lightning.registry.MODELS)",
    )
    parser.add_argument(
        "--model-class", default=None, help="a model's class path instead (fcn_lightning.SIFTFlowFCN16s)"
    )
    parser.add_argument(
        "--num-classes", type=int, help="classes (VOC 21, Context 60, ...; else the configs')"
    )
    parser.add_argument("--out", required=True, help="the checkpoint to write (.ckpt)")
    parser.add_argument("--in-channels", type=int, default=None, help="4 for NYUDv2 RGB-D (default 3)")
    parser.add_argument("--width", type=float, default=None, help="trunk width (1.0, the paper's; tests)")
    parser.add_argument(
        "--learn-upsampling", action="store_true", help="learnable upsamplers (default: fixed bilinear)"
    )
    args = parser.parse_args(argv)
    if not (args.config or args.variant or args.model_class):
        parser.error("give --config (the configs that train the model), --variant or --model-class")
    if not args.config and args.num_classes is None:
        parser.error("give --num-classes or --config")
    configured, num_classes, options = model_of_configs(args.config) if args.config else (None, None, {})
    num_classes = num_classes if args.num_classes is None else args.num_classes
    for name in (*NET_SHAPE, "learn_upsampling"):  # the command line's over the configs'
        if (value := getattr(args, name)) is not None:
            options[name] = value
    learned: list[str] = []
    try:
        cls = model_class(args.model_class or args.variant or configured)
    except UnknownModelError as error:
        given = args.model_class or configured
        parser.error(
            f"{'--model-class' if args.model_class else '--config'}: {error}{class_meant('model', given)}"
        )
    try:
        out = convert_caffe(args.caffemodel, args.out, cls, num_classes, learned, **options)
    except (OSError, ValueError) as error:
        parser.error(f"{type(error).__name__}: {error}")
    print(f"{args.caffemodel} -> {out} ({cls.__name__}, {num_classes} classes, Caffe inputs)")
    if learned:
        setting = torch.load(out, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"]
        print(
            f"The file's {', '.join(learned)} kernels are not the bilinear kernel: converted as learned "
            f"upsamplers holding exactly those kernels (learn_upsampling: {setting['learn_upsampling']})."
        )
    return out
