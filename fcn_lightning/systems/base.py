"""LightningModules: one per model, sharing ``FCNSystem`` (loss, optimiser recipe, metrics, init). Each
model's class names its registry row (``spec``): its net and reference recipe. Any other optimiser comes in
through LightningCLI (``optimizer: {class_path: ..., init_args: ...}``), the recipe's bias rule applied."""

from __future__ import annotations

import dataclasses
import functools
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

#: The one change that trains without a missing Caffe ImageNet model: torchvision's ImageNet weights.
TORCHVISION_SWITCH: dict[str, str] = {
    VGG16_CAFFEMODEL: "add --model.init_args.init_from IMAGENET1K_V1",
    CAFFENET_CAFFEMODEL: (
        "use --config configs/voc/torchvision/fcn_alexnet.yaml instead of configs/voc/fcn_alexnet.yaml"
    ),
}


def read_init_file(init_from: str) -> dict[str, Any]:
    """Load an ``init_from`` file (stage checkpoint or VGG16 state dict) safely, tensors memory-mapped.

    A ``.caffemodel`` is converted once into a cached state dict recording Caffe's input normalisation. A
    missing Caffe ImageNet model is an error naming the folder searched, the download and the switch to
    torchvision's weights, raised when the model is built, never while a config is only parsed.
    """
    path = Path(init_from).expanduser()
    if path.suffix == ".caffemodel":
        if not path.is_file() and path.name in IMAGENET_CAFFEMODELS:
            what, published = IMAGENET_CAFFEMODELS[path.name]
            fetch = next(f"fcn-lightning download {i.name}" for i in ITEMS.values() if i.file == path.name)
            raise FileNotFoundError(
                f"init_from: {path.name} ({what}, where the paper's nets start) is not in {path.parent} (the "
                f"weights folder: $FCN_WEIGHTS, else $FCN_DATA/weights, else ./data/weights); `{fetch}` puts "
                f"it there (the authors' model zoo list points to {published}). To train from torchvision's "
                f"ImageNet weights instead (not the paper's start), {TORCHVISION_SWITCH[path.name]}"
            )
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


def weights_normalization(init_from: str, state: Mapping[str, Any] | None = None) -> str:
    """The input normalisation the weights of ``init_from`` expect: the torchvision enum's, a stage
    checkpoint's record, a converted state dict's record, else torchvision's (``state``: the file loaded)."""
    if init_from in VGG16Weights.__members__:
        return VGG16Weights[init_from].normalization.name
    state = read_init_file(init_from) if state is None else state
    if is_stage_checkpoint(state):
        return state.get("hyper_parameters", {}).get("input_normalization") or DEFAULT_NORMALIZATION
    return state_dict_normalization(state)


def resolve_input_normalization(
    sources: Sequence[str], input_normalization: str | None, states: Mapping[str, Mapping[str, Any]]
) -> str:
    """The normalisation a model uses: its ``init_from`` sources' (all alike), an explicit setting only
    where they agree (a mismatch silently costs mean IU); a random start takes the setting, or torchvision's.
    ``states``: the sources' files already loaded."""
    if input_normalization is not None:
        get_normalization(input_normalization)  # a typo fails here, naming the known ones
    found = {s: weights_normalization(s, states.get(s)) for s in sources}
    for source, expected in found.items():
        if input_normalization is not None and input_normalization != expected:
            raise ValueError(
                f"input_normalization={input_normalization!r} conflicts with init_from={source!r}, whose "
                f"weights expect {expected!r} inputs: leave input_normalization unset (the weights decide it)"
            )
    if len(set(found.values())) > 1:
        listing = ", ".join(f"{s!r} expects {n!r}" for s, n in found.items())
        raise ValueError(f"init_from sources expect different input normalisations ({listing}): use one kind")
    return next(iter(found.values()), input_normalization or DEFAULT_NORMALIZATION)


def freeze_all_but(net: nn.Module, train_only: Sequence[str]) -> None:
    """Freeze every parameter of ``net`` outside the layers (names or prefixes) of ``train_only``; an
    unknown layer, or a learnable upsampler left out, is an error."""

    def listed(name: str, layers: Iterable[str] = train_only) -> bool:
        return any(name == n or name.startswith(n + ".") for n in layers)

    named = dict(net.named_parameters())
    unknown = [n for n in train_only if not any(listed(k, [n]) for k in named)]
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


def given_class_weights(loss_weights: str | Sequence[float] | None, num_classes: int) -> torch.Tensor | None:
    """``loss_weights`` given as a list, checked, as a tensor; ``None`` for unweighted and ``auto``."""
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
    """``given`` (a ``kind``, a checkpoint's plain dict, or ``None``: the defaults) as a ``kind``; an
    unknown setting or a wrong type is an error naming ``name.<setting>`` (the command line's dict is
    unchecked before this)."""
    if given is None:
        return kind()
    values = dict(given) if isinstance(given, Mapping) else dataclasses.asdict(given)
    hints = typing.get_type_hints(kind)
    for key, value in values.items():
        if key not in hints:
            raise ValueError(f"{name}: no setting {key!r} (its settings: {', '.join(hints)})")
        if not _fits(value, hint := hints[key]):
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
    if hint in (int, float):  # a float setting takes an int, neither a bool
        return isinstance(value, int | hint) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


class FCNSystem(L.LightningModule):
    """What every FCN LightningModule shares. Each model's class only names its registry row (``spec``).

    Args:
        num_classes: output classes (linked from the datamodule by the CLI).
        init_from: where the weights start: ``None`` (random), ``"IMAGENET1K_V1"`` (torchvision's ImageNet
            VGG16), a VGG16 state dict or ``.caffemodel`` (the reference's start), or a coarser stage's
            checkpoint (matching parameters copied; new score layers stay 0).
        input_normalization: leave unset (the weights of ``init_from`` decide it), but for a random start.
        loss_reduction: ``"sum"`` over pixels, divided by the batch (the reference's: its tiny rates assume
            it); ``"mean"`` over labelled pixels; ``"reference"``: the row's recipe.
        loss_sampling: p, the fraction of the training loss kept (paper section 4.4): each final-layer cell
            is kept with probability p each step; give the data ``ceil(batch / p)`` images. 1: no sampling.
        loss_weights: a weight per class in the cross-entropy: ``None`` (unweighted, the reference's),
            ``"auto"`` (median-frequency balancing of the training masks, kept in the checkpoints), or a list.
        optimizer: an optimiser factory (``class_path`` / ``init_args``); ``None``: the recipe's SGD.
        lr_scheduler: an optional scheduler factory (stepped every optimisation step).
        bias_lr_mult: learning-rate factor of the biases (``None``: the recipe's).
        bias_weight_decay: weight decay of the biases (``None``: the recipe's, 0).
        class_names: names for per-class IU logging (linked from the datamodule by the CLI).
        exclude_classes: classes left out of the metrics' class averages (SIFT Flow).
        train_only: train only these layers (names or prefixes, e.g. ``[score_fr]`` for FCN-32s fixed),
            freezing every other parameter. ``None``: everything.
        shift_and_stitch: evaluate by shift-and-stitch at this factor (a divisor of the output stride).
        shift_and_stitch_batch: shifted copies of a batch run through the net together (memory vs speed).
        inference: the memory budget of validation, test and predict (``max_pixels``, ``tile``,
            ``overlap``): a larger image runs in overlapping tiles that equal the whole image's logits.
        tta: test-time augmentation (``scales``, ``flip``): the mean softmax over the views, used by
            predict and scored apart by validation and test (``val/tta/...``).
        net_options: the net's shape options (:func:`fcn_lightning.nets.build_fcn`): ``in_channels``,
            ``width`` (1.0: the paper's net), ``batch_norm``, ``learn_upsampling``, ``dropout``.
    """

    #: This model's row of ``fcn_lightning.registry``, set where each model's class is defined.
    spec: ClassVar[ModelSpec]
    #: The ImageNet weights ``init_from`` takes by name (not a file).
    named_weights: ClassVar[tuple[str, ...]] = tuple(VGG16Weights.__members__)

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
        sources = [init_from] if isinstance(init_from, str) and init_from else list(map(str, init_from or ()))
        states = {s: read_init_file(s) for s in sources if s not in VGG16Weights.__members__}
        # Factories are not plain data: kept out of the checkpoint so it loads with weights_only=True.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        # The checkpoint records what is used: the recipe's where unset, the weights' normalisation.
        for key in ("loss_reduction", "bias_lr_mult", "bias_weight_decay"):
            if self.hparams[key] in (None, "reference"):
                self.hparams[key] = getattr(self.spec.recipe, key)
        self.hparams.input_normalization = resolve_input_normalization(sources, input_normalization, states)
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.net = self.build_net(num_classes, **net_options)
        if sources:
            self.initialise_from_sources(sources, states)
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
        metric_args = {"num_classes": num_classes, "class_names": class_names}
        metric_args["exclude_classes"] = exclude_classes or ()
        self.val_metrics = SegmentationMetrics(**metric_args)
        self.test_metrics = SegmentationMetrics(**metric_args)
        #: Scores of the test-time augmented predictions, logged apart (``val/tta/...``); only with TTA on.
        self.tta_metrics = nn.ModuleDict(
            {p: SegmentationMetrics(**metric_args) for p in ("val", "test")} if self.tta.augments else {}
        )
        #: The last evaluation's scores and summed confusion matrix (CPU) per prefix, for plots and loggers.
        self.last_evaluation: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def reference_lr(self) -> float:
        """The reference solver's learning rate for this model (its registry row's recipe)."""
        return self.spec.recipe.lr

    @property
    def input_normalization(self) -> str:
        """The input normalisation the weights expect (the data module follows it)."""
        return self.hparams.input_normalization

    @property
    def in_channels(self) -> int:
        """Input channels of the net (the data's must match)."""
        return int(self.net.in_channels)

    # ----------------------------------------------------------------------------------- initialisation

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
        """A coarser stage's weights into the whole net, or ImageNet weights into the trunk (``state``: the
        file of ``source`` already loaded)."""
        if source not in self.named_weights:
            state = read_init_file(source) if state is None else state
            if is_stage_checkpoint(state):
                copied = self.initialise_from_stage(state, source)
                log.info("initialised %d tensors from stage checkpoint %s", len(copied), source)
                return
        self.initialise_trunk(source, state)
        log.info("trunk initialised from ImageNet weights %s", source)

    def initialise_trunk(self, source: str, state: Mapping[str, Any] | None) -> None:
        """VGG16 weights into the trunk: those ``source`` names (``state`` None) or a state dict. More than
        3 input channels: the extra filters are the mean RGB filter."""
        vgg16 = load_vgg16_state_dict(source) if state is None else state.get("state_dict", state)
        transplant_vgg16(self.net.trunk, vgg16_state_for_input(vgg16, self.in_channels))

    def initialise_from_stage(
        self,
        state: Mapping[str, Any],
        source: str,
        select: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    ) -> list[str]:
        """Copy every tensor of a coarser stage's net (of this model's classes) whose name this net has, after
        ``select`` (a late-fusion stream takes a single-stream net's); returns the names copied."""
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
        """Refuse a checkpoint of other classes, another model or normalisation, naming both values. With
        ``loss_weights: auto``, go on with the weights it trained with (not those :meth:`setup` counted
        from the masks as they are now), saying where they differ."""
        try:
            source, loggers = getattr(self.trainer, "ckpt_path", None), self.trainer.loggers
        except RuntimeError:  # loaded without a trainer (load_from_checkpoint)
            source, loggers = None, []
        refuse_mismatched_checkpoint(self, checkpoint, source)
        recorded = checkpoint.get(AUTO_WEIGHTS_KEY)
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

    def evaluation_logits(
        self, image: torch.Tensor, augmented: bool = False, sizes: torch.Tensor | None = None
    ) -> Any:
        """What evaluation scores: the net's (or shift-and-stitch) output, whole or in tiles (``inference``);
        ``augmented``: the log mean softmax over the ``tta`` views of each image (``sizes``: unpadded)."""
        factor = self.hparams.get("shift_and_stitch")
        per_pass = self.hparams.get("shift_and_stitch_batch", 1)
        stitched = functools.partial(shift_and_stitch, self.net, factor=factor, shifts_per_pass=per_pass)
        single_view = self.net if factor is None else stitched

        def infer(view: torch.Tensor) -> Any:
            return tiled_inference(single_view, view, self.inference, self.tile_geometry)

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
        """Cross-entropy ignoring 255, summed per image (reference) or averaged over labelled pixels (their
        class weights, as torch's). ``keep``: a sampled loss's pixels, standing for ``batch x p`` images;
        ``weighted=False``: a second task's logits, which ``loss_weights`` are not of."""
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
        auto = self.hparams.get("loss_weights") == "auto" and self.loss_class_weights is None
        if not auto or stage not in ("fit", "validate", "test"):
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
        self._score(self.evaluation_logits(batch["image"]), batch, metrics, prefix)
        if self.tta.augments:  # scored apart: the plain keys stay single-scale, as the paper reports
            augmented = self.evaluation_logits(batch["image"], augmented=True, sizes=batch.get("size"))
            self._score(augmented, batch, self.tta_metrics[prefix], f"{prefix}/tta")

    def _score(self, logits: Any, batch: dict[str, Any], metrics: SegmentationMetrics, prefix: str) -> None:
        """One batch's logits into ``metrics``, its loss logged as ``<prefix>/loss``."""
        metrics.update(logits, batch["mask"])
        loss = self.loss(logits, batch["mask"])
        self.log(f"{prefix}/loss", loss, batch_size=logits.shape[0], sync_dist=True)

    def _log_scores(
        self, metrics: SegmentationMetrics, prefix: str, prog_bar: bool = False
    ) -> dict[str, torch.Tensor]:
        """Log the epoch's scores under ``<prefix>/``, keep them in :attr:`last_evaluation` and reset."""
        result = metrics.compute()  # syncs the confusion matrices across processes once per epoch
        self.log_dict(as_floats({k: result[k] for k in SCORE_NAMES}, prefix=f"{prefix}/"), prog_bar=prog_bar)
        self.log_dict(metrics.per_class(result, prefix=f"{prefix}/iu/"))
        # the matrix summed over the processes (metrics.confmat is this process's share again)
        self.last_evaluation[prefix] = {**result, "confmat": result["confmat"].detach().cpu()}
        metrics.reset()
        return result

    def _log_metrics(self, metrics: SegmentationMetrics, prefix: str) -> None:
        self._log_scores(metrics, prefix, prog_bar=True)

    def _end_evaluation(self, metrics: SegmentationMetrics, prefix: str) -> None:
        self._log_metrics(metrics, prefix)
        if self.tta.augments:
            self._log_scores(self.tta_metrics[prefix], f"{prefix}/tta")

    def on_validation_epoch_start(self) -> None:
        # Fresh, process-private states: ddp_spawn pickles the module into shared memory, so without this
        # the processes would add into one confusion matrix concurrently (racy, and summed twice on sync).
        for module in self.modules():
            if isinstance(module, SegmentationMetrics):
                module.reset()

    on_test_epoch_start = on_validation_epoch_start

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._end_evaluation(self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._end_evaluation(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class indices per pixel (uint8 on the CPU; test-time augmented with ``tta``) with the batch's ids,
        image sizes (to crop padding) and, for image folders, paths."""
        logits = self.evaluation_logits(batch["image"], augmented=True, sizes=batch.get("size"))
        out = {"pred": logits.argmax(1).to(torch.uint8).cpu(), "size": batch["size"].cpu()}
        return out | {k: batch[k] for k in ("id", "path") if k in batch}

    # -------------------------------------------------------------------------------------- optimiser

    def configure_optimizers(self) -> Any:
        # Frozen parameters are left out; FCN-AlexNet's trunk biases go with the weights, as its reference.
        trunk_as_weights, weights, biases = self.spec.recipe.trunk_biases_as_weights, [], []
        for name, param in self.net.named_parameters():
            if param.requires_grad:
                is_bias = name.endswith("bias") and not (trunk_as_weights and name.startswith("trunk."))
                (biases if is_bias else weights).append(param)
        groups = [{"params": weights}, {"params": biases, "weight_decay": self.hparams.bias_weight_decay}]
        optimizer = (self.optimizer_factory or self.reference_sgd)(groups)
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
