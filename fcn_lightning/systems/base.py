"""LightningModules: one per model, sharing ``FCNSystem`` (loss, optimiser recipe, metrics, init).

Each model's class names its registry row (``spec``), which gives its net and its reference recipe
(:class:`~fcn_lightning.registry.Recipe`); the defaults are that recipe: cross-entropy ignoring the void
label, reduced as the recipe says (the VGG16 nets: summed over pixels, the reference's unnormalised loss,
which is why their learning rates are 1e-10 and below), SGD at the recipe's fixed rate, momentum and
weight decay, its bias rule, and frozen upsampling layers left out of the optimiser. Any other optimiser
comes in through LightningCLI as ``optimizer: {class_path: ..., init_args: ...}``; the bias rule is
applied to it too.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from fcn_lightning import registry
from fcn_lightning.data.download.items import ITEMS
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.metrics import SCORE_NAMES, SegmentationMetrics, as_floats
from fcn_lightning.nets import VGG16Weights, build_fcn, get_normalization, transplant_vgg16
from fcn_lightning.nets.caffe import (
    CAFFENET_CAFFEMODEL,
    IMAGENET_CAFFEMODELS,
    VGG16_CAFFEMODEL,
    cached_caffe_imagenet,
)
from fcn_lightning.nets.shift_stitch import check_factor, shift_and_stitch
from fcn_lightning.nets.surgery import load_vgg16_state_dict, transfer_parameters, vgg16_state_for_input
from fcn_lightning.nets.tiling import TilingOptions, net_tile_geometry, tile_plan, tiled_inference
from fcn_lightning.nets.tta import TestTimeAugmentation, check_tta, tta_logits
from fcn_lightning.nets.weights import DEFAULT_NORMALIZATION, state_dict_normalization
from fcn_lightning.registry import ModelSpec
from fcn_lightning.systems.checkpoints import (
    AUTO_WEIGHTS_KEY,
    RECORD_KEY,
    model_record,
    refuse_mismatched_checkpoint,
    refuse_other_classes,
)

log = logging.getLogger(__name__)

Options = TypeVar("Options", TilingOptions, TestTimeAugmentation)

#: Where the paper-table configs look for the Caffe ImageNet models: ``$FCN_WEIGHTS``, else
#: ``$FCN_DATA/weights``, else ``./data/weights`` (the configs' ``init_from`` spells this out).
WEIGHTS_FOLDER_SETTING = "$FCN_WEIGHTS, else $FCN_DATA/weights, else ./data/weights"
#: The one change that trains without a missing Caffe ImageNet model, from torchvision's ImageNet weights
#: instead (not the paper's start: other weights, other input normalisation).
TORCHVISION_SWITCH: dict[str, str] = {
    VGG16_CAFFEMODEL: "add --model.init_args.init_from IMAGENET1K_V1",
    CAFFENET_CAFFEMODEL: (
        "use --config configs/voc/torchvision/fcn_alexnet.yaml instead of configs/voc/fcn_alexnet.yaml"
    ),
}


def missing_caffemodel_message(path: Path) -> str:
    """One line for an ``init_from`` Caffe model that is not there: the file, the folder searched, where
    the authors' model zoo publishes it, and the switch to torchvision's weights."""
    what, published = IMAGENET_CAFFEMODELS[path.name]
    switch = TORCHVISION_SWITCH[path.name]
    fetch = next(f"fcn-lightning download {i.name}" for i in ITEMS.values() if i.file == path.name)
    return (
        f"init_from: {path.name} ({what}, where the paper's nets start) is not in {path.parent} (the weights "
        f"folder: {WEIGHTS_FOLDER_SETTING}); `{fetch}` puts it there (the authors' model zoo list points to "
        f"{published}). To train from torchvision's ImageNet weights instead (not the paper's start), "
        f"{switch}"
    )


def read_init_file(init_from: str) -> dict[str, Any]:
    """Load an ``init_from`` file (stage checkpoint or VGG16 state dict) safely, tensors memory-mapped.

    A ``.caffemodel`` (the Caffe ImageNet VGG16, or CaffeNet for FCN-AlexNet) is converted once into a
    cached state dict that records the Caffe input normalisation
    (:func:`~fcn_lightning.nets.caffe.cached_caffe_imagenet`). A missing Caffe ImageNet model is an error
    naming it, the folder searched, where it is published and the switch to torchvision's weights; it is
    raised when the model is built (fit, validate, ...), never while a config is only parsed.
    """
    path = Path(init_from).expanduser()
    if path.suffix == ".caffemodel" and not path.is_file() and path.name in IMAGENET_CAFFEMODELS:
        raise FileNotFoundError(missing_caffemodel_message(path))
    if path.suffix == ".caffemodel":
        path = cached_caffe_imagenet(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"init_from: no such file {path} (expected a checkpoint, a VGG16 state dict, "
            f"or one of {list(VGG16Weights.__members__)})"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # files saved in torch's legacy (non-zip) format cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"init_from: {path} holds a {type(state).__name__}, not a checkpoint or state dict")
    return state


def is_stage_checkpoint(state: Mapping[str, Any]) -> bool:
    """Whether a loaded file is a checkpoint of an ``FCNSystem`` (its net under ``net.``)."""
    inner = state.get("state_dict")
    return isinstance(inner, Mapping) and any(str(k).startswith("net.") for k in inner)


def weights_normalization(init_from: str | None, state: Mapping[str, Any] | None = None) -> str | None:
    """The input normalisation the weights named by ``init_from`` expect; ``None`` for a random start.

    torchvision's weights enum says it itself; a stage checkpoint recorded its model's; a VGG16
    state-dict file carries a record if it was converted (e.g. from Caffe), else it is torchvision's.
    ``state``: the file already loaded (saves reading it twice).
    """
    if not init_from:
        return None
    if init_from in VGG16Weights.__members__:
        return VGG16Weights[init_from].normalization.name
    state = read_init_file(init_from) if state is None else state
    if is_stage_checkpoint(state):
        return state.get("hyper_parameters", {}).get("input_normalization") or DEFAULT_NORMALIZATION
    return state_dict_normalization(state)


def resolve_input_normalization(
    init_from: str | None, input_normalization: str | None, state: Mapping[str, Any] | None = None
) -> str:
    """The normalisation a model uses: its weights', and an explicit setting only where they agree.

    Feeding torchvision weights Caffe-style inputs (or the reverse) silently costs mean IU, so a
    conflicting explicit setting is an error naming both. A random start takes the explicit setting, or
    torchvision's.
    """
    if input_normalization is not None:
        get_normalization(input_normalization)  # a typo fails here, naming the known ones
    expected = weights_normalization(init_from, state)
    if expected is None:
        return input_normalization or DEFAULT_NORMALIZATION
    if input_normalization is not None and input_normalization != expected:
        raise ValueError(
            f"input_normalization={input_normalization!r} conflicts with init_from={init_from!r}, whose "
            f"weights expect {expected!r} inputs: leave input_normalization unset (the weights decide it)"
        )
    return expected


def init_sources(init_from: str | Sequence[str] | None) -> list[str]:
    """``init_from`` as a list: one source, or one per stream of a late-fusion net; empty for none."""
    if not init_from:
        return []
    return [init_from] if isinstance(init_from, str) else [str(s) for s in init_from]


def resolve_sources_normalization(
    sources: Sequence[str], input_normalization: str | None, states: Mapping[str, Mapping[str, Any]]
) -> str:
    """:func:`resolve_input_normalization` over every source; sources that disagree are an error."""
    if not sources:
        return resolve_input_normalization(None, input_normalization)
    found = {s: resolve_input_normalization(s, input_normalization, states.get(s)) for s in sources}
    if len(set(found.values())) > 1:
        listing = ", ".join(f"{s!r} expects {n!r}" for s, n in found.items())
        raise ValueError(f"init_from sources expect different input normalisations ({listing}): use one kind")
    return next(iter(found.values()))


def split_bias_groups(
    net: nn.Module, trunk_biases_as_weights: bool = False
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable weights and biases of ``net``; frozen parameters (fixed upsamplers) are left out.

    ``trunk_biases_as_weights``: the trunk's biases (``trunk.*``) go with the weights (1x learning rate,
    weight decay), as the reference FCN-AlexNet net leaves them; only the head's take the bias rule.
    """
    weights, biases = [], []
    for name, param in net.named_parameters():
        if param.requires_grad:
            is_bias = name.endswith("bias") and not (trunk_biases_as_weights and name.startswith("trunk."))
            (biases if is_bias else weights).append(param)
    return weights, biases


def freeze_all_but(net: nn.Module, train_only: Sequence[str]) -> list[str]:
    """Freeze every parameter of ``net`` outside the layers named in ``train_only`` (module names or
    prefixes: ``score_fr``, ``trunk.fc``); returns the names left trainable. A name that matches no
    parameter is an error listing the net's layers; so is a learnable upsampler left out (a
    contradiction: name it to train it, or leave ``learn_upsampling`` off)."""

    def listed(name: str) -> bool:
        return any(name == n or name.startswith(n + ".") for n in train_only)

    named = dict(net.named_parameters())
    unknown = [n for n in train_only if not any(k == n or k.startswith(n + ".") for k in named)]
    if unknown:
        layers = sorted({k.rsplit(".", 1)[0] for k in named})
        raise ValueError(f"train_only: no layer named {unknown} in the net; its layers: {', '.join(layers)}")
    dropped = [k for k, p in named.items() if p.requires_grad and "upscore" in k and not listed(k)]
    if dropped:
        raise ValueError(
            f"train_only {list(train_only)} freezes the learnable upsamplers {dropped}: list them in "
            "train_only, or leave learn_upsampling off (the reference's fixed upsampling)"
        )
    for name, param in named.items():
        param.requires_grad_(listed(name))
    return [k for k in named if listed(k)]


def given_class_weights(loss_weights: str | Sequence[float] | None, num_classes: int) -> torch.Tensor | None:
    """``loss_weights`` given as a list, as a tensor after its checks (one weight >= 0 per class, not all
    0); ``None`` for unweighted and for ``auto`` (counted from the data at setup)."""
    if loss_weights is None or loss_weights == "auto":
        return None
    setting = "model.init_args.loss_weights"
    if isinstance(loss_weights, str):
        raise ValueError(f"{setting}: {loss_weights!r} is neither auto, null nor a list of weights")
    weights = torch.tensor([float(w) for w in loss_weights], dtype=torch.float32)
    if len(weights) != num_classes:
        raise ValueError(
            f"{setting}: {len(weights)} weight(s) for {num_classes} classes: give one per class, in the "
            f"classes' order"
        )
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(
            f"{setting}: {list(loss_weights)} has a negative or non-finite weight: each must be >= 0"
        )
    if not weights.any():
        raise ValueError(f"{setting}: every weight is 0: nothing would be learned")
    return weights


def as_options(name: str, kind: type[Options], given: Options | Mapping[str, Any] | None) -> Options:
    """``given`` as a ``kind`` dataclass: as it is, from the plain dict a checkpoint records, or the
    defaults for ``None``. An unknown setting or a value of another type is a one-line error naming
    ``name.<setting>`` (the command line reaches here through the plain-dict route, unchecked)."""
    if given is None:
        return kind()
    values = dict(given) if isinstance(given, Mapping) else dataclasses.asdict(given)
    hints = typing.get_type_hints(kind)
    for key, value in values.items():
        if key not in hints:
            raise ValueError(f"{name}: no setting {key!r} (its settings: {', '.join(hints)})")
        if not _fits(value, hints[key]):
            hint = hints[key]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise ValueError(f"{name}.{key} must be {expected}, got {value!r}")
    return kind(**values) if isinstance(given, Mapping) else given


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` (the few kinds option dataclasses use)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


class FCNSystem(L.LightningModule):
    """What every FCN LightningModule shares. Each model's class only names its registry row (``spec``).

    Args:
        num_classes: output classes (linked from the datamodule by the CLI).
        init_from: where the weights start: ``None`` (random trunk), ``"IMAGENET1K_V1"`` (torchvision's
            ImageNet VGG16), the path of a torchvision-style VGG16 state dict (ImageNet surgery), of the Caffe
            ImageNet VGG16 ``VGG_ILSVRC_16_layers.caffemodel`` (the reference's start, Caffe inputs), or
            of a checkpoint of a coarser stage (every matching parameter copied; new score layers stay 0).
        input_normalization: leave unset: the weights of ``init_from`` decide it (``"imagenet"`` for
            torchvision's, ``"caffe"`` for Caffe-converted ones, a checkpoint's own); a setting that
            conflicts with them is an error. Set it only for a random start. Checkpoints record it, and the
            data module normalises its inputs to match.
        loss_reduction: ``"sum"``: the reference's unnormalised loss, summed over pixels and divided by the
            batch size (its tiny learning rates assume it); ``"mean"``: averaged over labelled pixels.
            ``"reference"``: the reference recipe's (the model's registry row).
        loss_sampling: p, the fraction of the training loss kept (paper section 4.4: patchwise training
            emulated by sampling the loss): each cell of the final score layer is kept with probability p,
            all pixels of its footprint together, drawn afresh each step; evaluation is never sampled.
            With p < 1 the kept pixels count as ``batch x p`` images (``sum`` divides by that, so the loss
            stays an unbiased estimate of the whole-image loss; ``mean`` by the kept labelled pixels). The
            batch is not grown here: give the data module ``ceil(batch / p)`` images, as
            ``fcn-lightning compare-sampling`` does. 1 (default): whole images, no sampling.
        loss_weights: a weight per class in the cross-entropy, for classes of very unequal size: ``None``
            (the reference's, and every paper config's: unweighted), ``"auto"``: median-frequency balancing
            (Eigen & Fergus; :mod:`fcn_lightning.data.class_weights`) over the training split's masks,
            counted once per dataset and kept beside it, the weights printed and logged with the run's
            hyperparameters and recorded in its checkpoints (a resumed run keeps them); or a list, one
            weight >= 0 per class. ``mean`` then divides by the weights
            of the labelled pixels (torch's weighted mean), ``sum`` by the batch as before.
        optimizer: an optimiser factory (LightningCLI ``class_path`` / ``init_args``); ``None`` is the
            reference SGD of the model's recipe.
        lr_scheduler: an optional scheduler factory (stepped every optimisation step).
        bias_lr_mult: learning-rate factor of the biases (``None``: the recipe's, 2; FCN-AlexNet's trunk
            biases: 1, see the recipe's ``trunk_biases_as_weights``).
        bias_weight_decay: weight decay of the biases (``None``: the recipe's, 0).
        class_names: names for per-class IU logging (linked from the datamodule by the CLI).
        exclude_classes: classes left out of the metrics' class averages (SIFT Flow).
        train_only: train only these layers (net module names or name prefixes, e.g. ``[score_fr]`` for the
            paper's FCN-32s-fixed, whose trunk is frozen); every other parameter is frozen and left out of
            the optimiser (the reference's learning-rate factor 0). Frozen layers still run in train mode,
            as the reference's do (dropout after fc6 / fc7 stays active; batch-norm statistics, not in the
            paper, keep updating). ``None``: train everything.
        shift_and_stitch: evaluate (validation, test, predict) by shift-and-stitch at this factor instead
            of the net's own upsampling (``nets.shift_stitch``: ``factor^2`` passes per image; the factor
            divides the output stride; 32 on FCN-32s is stride 1). ``None``: the net's own output.
        shift_and_stitch_batch: shifted copies of a batch run through the net together (memory vs speed).
        inference: the memory budget of validation, test and predict (``nets.tiling.TilingOptions``:
            ``max_pixels``, ``tile``, ``overlap``): an image within it runs whole, a larger one in
            overlapping tiles whose weighted mean equals the whole image's logits (at the default overlap).
        tta: test-time augmentation (``nets.tta.TestTimeAugmentation``: ``scales``, ``flip``): the mean
            softmax over the views. Predictions use it; validation and test score it apart, under
            ``val/tta/...`` and ``test/tta/...``, next to the plain single-scale ``val/...`` scores.
        net_options: the net's shape options, those of :func:`fcn_lightning.nets.build_fcn`:
            ``in_channels`` (3 RGB / HHA, 4 RGB-D), ``width`` (trunk channel multiplier; 1.0 is the
            paper's net, smaller is for tests and demos), ``batch_norm``, ``learn_upsampling``, ``dropout``.
    """

    #: This model's row of ``fcn_lightning.registry`` (its net, trunk, recipe and the model it starts
    #: from), set where each model's class is defined; a subclass inherits it.
    spec: ClassVar[ModelSpec]

    def __init__(
        self,
        num_classes: int = 21,
        init_from: str | list[str] | None = None,
        input_normalization: str | None = None,
        loss_reduction: Literal["reference", "sum", "mean"] = "reference",
        loss_sampling: float = 1.0,
        loss_weights: Literal["auto"] | list[float] | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        bias_lr_mult: float | None = None,
        bias_weight_decay: float | None = None,
        class_names: list[str] | None = None,
        exclude_classes: list[int] | None = None,
        train_only: list[str] | None = None,
        shift_and_stitch: int | None = None,
        shift_and_stitch_batch: int = 1,
        inference: TilingOptions | Mapping[str, Any] | None = None,
        tta: TestTimeAugmentation | Mapping[str, Any] | None = None,
        **net_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(type(self), "spec", None), ModelSpec):
            raise TypeError(f"{type(self).__name__} names no model: give its class a row (spec = registry.X)")
        if loss_reduction not in ("reference", "sum", "mean"):
            raise ValueError(f"loss_reduction must be 'reference', 'sum' or 'mean', got {loss_reduction!r}")
        if not 0 < loss_sampling <= 1:
            raise ValueError(
                f"loss_sampling must lie in (0, 1] (the fraction p of cells kept), got {loss_sampling}"
            )
        #: The loss's weight per class (``loss_weights``); ``auto`` ones are counted in :meth:`setup`.
        self.register_buffer("loss_class_weights", given_class_weights(loss_weights, num_classes), False)
        sources = init_sources(init_from)
        init_states = {s: read_init_file(s) for s in sources if s not in VGG16Weights.__members__}
        # Factories are not plain data: kept out of the checkpoint so it loads with weights_only=True.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        # The checkpoint records the loss and bias rule actually used: the recipe's where unset.
        recipe = self.spec.recipe
        if loss_reduction == "reference":
            self.hparams.loss_reduction = recipe.loss_reduction
        for key in ("bias_lr_mult", "bias_weight_decay"):
            if self.hparams[key] is None:
                self.hparams[key] = getattr(recipe, key)
        # The checkpoint records the normalisation actually used, not the (usually unset) argument.
        self.hparams.input_normalization = resolve_sources_normalization(
            sources, input_normalization, init_states
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.net = self.build_net(num_classes, **net_options)
        if sources:
            self.initialise_from_sources(sources, init_states)
        elif (earlier := self.spec.starts_from) is not None:
            rank_zero_warn(
                f"{self.spec.title} starts from a trained {earlier.full_title} in the paper, but init_from "
                f"is unset: training from a random trunk. Pass --model.init_args.init_from "
                f"path/to/{earlier.name}.ckpt (the staged command does), or train the at-once variant."
            )
        if train_only is not None:
            freeze_all_but(self.net, train_only)
        if shift_and_stitch is not None:
            check_factor(self.net, shift_and_stitch)
        if shift_and_stitch_batch < 1:
            raise ValueError(f"shift_and_stitch_batch must be >= 1, got {shift_and_stitch_batch}")
        self.inference = as_options("inference", TilingOptions, inference)
        self.tta = as_options("tta", TestTimeAugmentation, tta)
        # Plain data in the checkpoint (loadable with weights_only=True); bad values fail here, named.
        self.hparams.inference = dataclasses.asdict(self.inference)
        self.hparams.tta = dataclasses.asdict(self.tta)
        # shift-and-stitch shifts its input by less than the output stride: that much more context
        extra = 0 if shift_and_stitch is None else int(self.net.output_stride)
        self.tile_geometry = net_tile_geometry(self.net, extra_context=extra)
        tile_plan(self.inference, self.tile_geometry)
        check_tta(self.tta)
        metric_args = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX}
        metric_args |= {"exclude_classes": exclude_classes or (), "class_names": class_names}
        self.val_metrics = SegmentationMetrics(**metric_args)
        self.test_metrics = SegmentationMetrics(**metric_args)
        #: Scores of the test-time augmented predictions, logged apart (``val/tta/...``); only with TTA on.
        self.tta_metrics = nn.ModuleDict(
            {p: SegmentationMetrics(**metric_args) for p in ("val", "test")} if self.tta_active else {}
        )
        #: The last evaluation's scores and summed confusion matrix (CPU) per prefix, for plots and loggers.
        self.last_evaluation: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def reference_lr(self) -> float:
        """The reference solver's learning rate for this model (its registry row's recipe)."""
        return self.spec.recipe.lr

    # ----------------------------------------------------------------------------------- initialisation

    @property
    def input_normalization(self) -> str:
        """The input normalisation the weights expect (the data module follows it)."""
        return self.hparams.input_normalization

    @property
    def in_channels(self) -> int:
        """Input channels of the net (the data's must match)."""
        return int(self.net.in_channels)

    def build_net(self, num_classes: int, **net_options: Any) -> nn.Module:
        """The randomly initialised net of this model's row (a model with other heads overrides this)."""
        return build_fcn(self.spec.net, num_classes, trunk=self.spec.trunk, **net_options)

    def initialise_from_sources(
        self, sources: Sequence[str], states: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Initialise from ``init_from``: a single-stream net takes exactly one source."""
        if len(sources) != 1:
            raise ValueError(
                f"init_from: {self.spec.title} starts from one source, got {list(sources)} "
                f"(a list is for the late-fusion nets, one source per stream)"
            )
        self.initialise_from(sources[0], states.get(sources[0]))

    def initialise_from(self, source: str, state: Mapping[str, Any] | None = None) -> None:
        """Load ImageNet VGG16 weights into the trunk, or a coarser stage's weights into the whole net.

        ``state``: the file of ``source`` already loaded (:func:`read_init_file`).
        """
        in_channels = self.in_channels  # > 3: early fusion, extra filters = mean RGB filter
        if source in VGG16Weights.__members__:
            transplant_vgg16(
                self.net.trunk, vgg16_state_for_input(load_vgg16_state_dict(source), in_channels)
            )
            log.info("trunk initialised from ImageNet VGG16 (%s)", source)
            return
        state = read_init_file(source) if state is None else state
        if is_stage_checkpoint(state):
            copied = self.initialise_from_stage(state, source)
            log.info("initialised %d tensors from stage checkpoint %s", len(copied), source)
        else:
            transplant_vgg16(
                self.net.trunk, vgg16_state_for_input(state.get("state_dict", state), in_channels)
            )
            log.info("trunk initialised from VGG16 state dict %s", source)

    def initialise_from_stage(
        self,
        state: Mapping[str, Any],
        source: str,
        select: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    ) -> list[str]:
        """Copy a coarser stage's net (a checkpoint of an ``FCNSystem``: :func:`is_stage_checkpoint`) into
        this net: every tensor whose name this net has
        (:func:`~fcn_lightning.nets.surgery.transfer_parameters`).

        Its classes must be this model's. ``select``: renames or picks the checkpoint's net tensors first
        (a late-fusion stream takes a single-stream net's). Returns the names copied.
        """
        refuse_other_classes(self, state, source)
        net_state = {
            k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")
        }
        return transfer_parameters(select(net_state) if select else net_state, self.net)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = model_record(self)  # which model wrote it, checked when it is loaded
        if self.hparams.get("loss_weights") == "auto" and self.loss_class_weights is not None:
            checkpoint[AUTO_WEIGHTS_KEY] = self.loss_class_weights.tolist()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of other classes, another model or normalisation, naming both values; take
        the ``loss_weights: auto`` weights it trained with."""
        try:
            source, loggers = getattr(self.trainer, "ckpt_path", None), self.trainer.loggers
        except RuntimeError:  # loaded without a trainer (load_from_checkpoint)
            source, loggers = None, []
        refuse_mismatched_checkpoint(self, checkpoint, source)
        self._take_recorded_weights(checkpoint.get(AUTO_WEIGHTS_KEY), source, loggers)

    def _take_recorded_weights(self, recorded: list[float] | None, source: Any, loggers: list[Any]) -> None:
        """``loss_weights: auto`` from a checkpoint: the weights it trained with, not those the masks give
        now (counted in :meth:`setup`, which runs first): a resumed run goes on with the weights it
        started with, and is told where the masks changed since."""
        if recorded is None or self.hparams.get("loss_weights") != "auto":
            return
        weights = torch.tensor(recorded, dtype=torch.float32)
        counted = self.loss_class_weights
        if counted is not None and not torch.allclose(counted.cpu(), weights):
            names = self.hparams.get("class_names") or range(len(recorded))
            listed = ", ".join(f"{n} {w:.4g}" for n, w in zip(names, recorded, strict=False))
            rank_zero_info(
                f"loss_weights auto: {source or 'the checkpoint'} trained with {listed}, kept (the masks "
                f"as they are now give {', '.join(f'{w:.4g}' for w in counted.tolist())}; --resume.auto "
                f"false starts afresh with those)"
            )
            for logger in loggers:  # the weights the run trains with, as setup logged the counted ones
                logger.log_hyperparams({"loss_class_weights": dict(zip(names, recorded, strict=False))})
        self.loss_class_weights = weights.to(self.device)

    # ------------------------------------------------------------------------------------------- steps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits N x num_classes x H x W."""
        return self.net(image)

    @property
    def tta_active(self) -> bool:
        """Whether test-time augmentation adds views beyond the image as it is."""
        return self.tta.augments

    def single_view_logits(self, image: torch.Tensor) -> Any:
        """The net's output on ``image``, or its shift-and-stitch output (``shift_and_stitch``)."""
        factor = self.hparams.get("shift_and_stitch")
        if factor is None:
            return self.net(image)
        return shift_and_stitch(self.net, image, factor, self.hparams.get("shift_and_stitch_batch", 1))

    def evaluation_logits(
        self, image: torch.Tensor, augmented: bool = False, sizes: torch.Tensor | None = None
    ) -> Any:
        """What validation, test and predict score: :meth:`single_view_logits`, whole or in tiles within
        the memory budget (``inference``: ``nets.tiling``), and with ``augmented``, the log of the mean
        softmax over the views of ``tta`` (``nets.tta``), each image's views of that image alone where
        ``sizes`` (the batch's ``size``) says it is padded. For a multi-task net, one per task."""

        def infer(view: torch.Tensor) -> Any:
            return tiled_inference(self.single_view_logits, view, self.inference, self.tile_geometry)

        return tta_logits(infer, image, self.tta, sizes) if augmented else infer(image)

    def scored_logits(self, logits: Any) -> torch.Tensor:
        """The logits the plain scores (``val/<score>``) are of; a multi-task model picks its task."""
        return logits

    def loss(
        self,
        logits: torch.Tensor,
        mask: torch.Tensor,
        keep: torch.Tensor | None = None,
        weighted: bool = True,
    ) -> torch.Tensor:
        """Cross-entropy ignoring 255, summed per image (reference) or averaged over labelled pixels.

        ``keep``: the pixels of a sampled loss (:meth:`sampled_pixels`); the sum then stands for
        ``batch x loss_sampling`` images. With class weights (``loss_weights``) each pixel counts its
        class's weight, and the mean is over the labelled pixels' weights, as torch's weighted
        cross-entropy. ``weighted=False``: unweighted whatever ``loss_weights`` says, for logits of
        other classes than ``num_classes`` (a second task's, which the weights are not of).
        """
        weight = self.loss_class_weights if weighted else None
        images = float(logits.shape[0])
        if keep is not None:
            mask = mask.masked_fill(~keep, IGNORE_INDEX)
            images *= self.hparams.loss_sampling
        total = F.cross_entropy(
            logits.float(), mask, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        if self.hparams.loss_reduction == "sum":
            return total / images
        labelled = mask != IGNORE_INDEX
        if weight is None:
            return total / labelled.sum().clamp(min=1)
        pixel_weights = weight[torch.where(labelled, mask, 0)] * labelled  # no boolean indexing: no sync
        return total / pixel_weights.sum().clamp(min=torch.finfo(total.dtype).tiny)

    def setup(self, stage: str) -> None:
        """``loss_weights: auto``: the training split's median-frequency weights, counted (or read from
        the cache beside the dataset) by the first process and handed to every other, so all agree."""
        if self.hparams.get("loss_weights") != "auto" or self.loss_class_weights is not None:
            return
        if stage not in ("fit", "validate", "test"):
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if not callable(getattr(datamodule, "class_weights", None)):
            raise ValueError(
                "model.init_args.loss_weights: auto counts the training masks of the data module, and "
                f"this run has none that can ({type(datamodule).__name__}): give a list of weights instead"
            )
        found: Any = None
        if self.trainer.is_global_zero:
            try:
                found = datamodule.class_weights()
            except Exception as e:  # raised on every process below, not left waiting in the broadcast
                found = e
        found = self.trainer.strategy.broadcast(found, src=0)
        if isinstance(found, BaseException):
            raise found
        self.loss_class_weights = torch.tensor(found.weights, dtype=torch.float32, device=self.device)
        if self.trainer.is_global_zero:
            rank_zero_info(found.describe())
            logged = {"loss_class_weights": dict(zip(found.class_names, found.weights, strict=True))}
            for logger in self.trainer.loggers:
                logger.log_hyperparams(logged)

    def sampled_pixels(self, logits: torch.Tensor) -> torch.Tensor:
        """N x H x W bool: the pixels whose final-layer cell is kept this step (probability
        ``loss_sampling`` per cell and image). Drawn on the logits' device with static shapes: no sync."""
        n, _, h, w = logits.shape
        stride, offset = self.net.output_stride, self.net.cell_offset
        first = offset // stride  # the cell of pixel 0 (the score map extends past the image)
        rows, cols = (
            torch.arange(size, device=logits.device).add_(offset).div_(stride, rounding_mode="floor") - first
            for size in (h, w)
        )
        cells = ((h - 1 + offset) // stride - first + 1, (w - 1 + offset) // stride - first + 1)
        keep = torch.rand(n, *cells, device=logits.device) < self.hparams.loss_sampling
        return keep[:, rows[:, None], cols[None, :]]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        keep = self.sampled_pixels(logits) if self.hparams.loss_sampling < 1 else None
        loss = self.loss(logits, batch["mask"], keep)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Any], metrics: SegmentationMetrics, prefix: str) -> None:
        logits = self.evaluation_logits(batch["image"])
        metrics.update(logits, batch["mask"])
        self.log(
            f"{prefix}/loss",
            self.loss(logits, batch["mask"]),
            batch_size=logits.shape[0],
            sync_dist=True,
        )
        self._evaluate_tta(batch, prefix)

    def _evaluate_tta(self, batch: dict[str, Any], prefix: str) -> None:
        """With TTA on, the augmented prediction scored apart, under ``<prefix>/tta/``: the plain keys stay
        single-scale (what checkpoints are selected by and the paper reports)."""
        if not self.tta_active:
            return
        augmented = self.evaluation_logits(batch["image"], augmented=True, sizes=batch.get("size"))
        logits = self.scored_logits(augmented)
        self.tta_metrics[prefix].update(logits, batch["mask"])
        loss = self.loss(logits, batch["mask"])
        self.log(f"{prefix}/tta/loss", loss, batch_size=logits.shape[0], sync_dist=True)

    def _log_tta_metrics(self, prefix: str) -> None:
        if not self.tta_active:
            return
        metrics = self.tta_metrics[prefix]
        result = metrics.compute()
        self.log_dict(as_floats({k: result[k] for k in SCORE_NAMES}, prefix=f"{prefix}/tta/"))
        self.log_dict(metrics.per_class(result, prefix=f"{prefix}/tta/iu/"))
        self.last_evaluation[f"{prefix}/tta"] = {**result, "confmat": result["confmat"].detach().cpu()}
        metrics.reset()

    def _log_metrics(self, metrics: SegmentationMetrics, prefix: str) -> None:
        result = metrics.compute()  # syncs the confusion matrices across processes once per epoch
        self.log_dict(as_floats({k: result[k] for k in SCORE_NAMES}, prefix=f"{prefix}/"), prog_bar=True)
        self.log_dict(metrics.per_class(result, prefix=f"{prefix}/iu/"))
        # the matrix summed over the processes (metrics.confmat is this process's share again)
        self.last_evaluation[prefix] = {**result, "confmat": result["confmat"].detach().cpu()}
        metrics.reset()

    def on_validation_epoch_start(self) -> None:
        # Fresh, process-private states: ddp_spawn pickles the module into shared memory, so without this
        # the processes would add into one confusion matrix concurrently (racy, and summed twice on sync).
        self.val_metrics.reset()
        if self.tta_active:
            self.tta_metrics["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()
        if self.tta_active:
            self.tta_metrics["test"].reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")
        self._log_tta_metrics("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")
        self._log_tta_metrics("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class indices per pixel (uint8 on the CPU; test-time augmented with ``tta``) with the batch's ids,
        image sizes (to crop padding) and, for image folders, paths."""
        logits = self.evaluation_logits(batch["image"], augmented=True, sizes=batch.get("size"))
        pred = logits.argmax(1).to(torch.uint8).cpu()
        out = {"pred": pred, "size": batch["size"].cpu()}
        return out | {k: batch[k] for k in ("id", "path") if k in batch}

    # -------------------------------------------------------------------------------------- optimiser

    def configure_optimizers(self) -> Any:
        weights, biases = split_bias_groups(self.net, self.spec.recipe.trunk_biases_as_weights)
        groups = [{"params": weights}, {"params": biases, "weight_decay": self.hparams.bias_weight_decay}]
        factory: Callable[[Iterable[Any]], torch.optim.Optimizer] = (
            self.optimizer_factory or self.reference_sgd
        )
        optimizer = factory(groups)
        optimizer.param_groups[1]["lr"] = optimizer.defaults["lr"] * self.hparams.bias_lr_mult
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def reference_sgd(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The reference solver of this model's recipe: a fixed rate, its momentum and weight decay."""
        recipe = self.spec.recipe
        if self.hparams.loss_reduction != recipe.loss_reduction:
            rank_zero_warn(
                f"{self.spec.title}'s reference learning rate {recipe.lr} is for loss_reduction="
                f"{recipe.loss_reduction!r}, not {self.hparams.loss_reduction!r}: set model.init_args."
                f"loss_reduction: {recipe.loss_reduction} (the configs do) or give an optimizer"
            )
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )


class FCN32s(FCNSystem):
    """FCN-32s: scores fc7, upsampled x32; from ImageNet VGG16."""

    spec = registry.FCN32S


class FCN16s(FCNSystem):
    """FCN-16s: FCN-32s fused with a pool4 score; from a trained FCN-32s."""

    spec = registry.FCN16S


class FCN8s(FCNSystem):
    """FCN-8s, staged: FCN-16s fused with a pool3 score; from a trained FCN-16s."""

    spec = registry.FCN8S


class FCN8sAtOnce(FCNSystem):
    """FCN-8s trained at once from ImageNet VGG16, its skips scaled by fixed factors."""

    spec = registry.FCN8S_ATONCE


class FCNPool5(FCNSystem):
    """FCN-pool5 of the journal's Table 2: predicts from pool5 alone (no fc6 / fc7, no fusion)."""

    spec = registry.FCN_POOL5


class FCNPool4(FCNSystem):
    """FCN-pool4 of the journal's Table 2: predicts from pool4 alone."""

    spec = registry.FCN_POOL4


class FCNPool3(FCNSystem):
    """FCN-pool3 of the journal's Table 2: predicts from pool3 alone."""

    spec = registry.FCN_POOL3
