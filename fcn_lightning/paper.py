"""The paper's numbers, once: every table row a run of this suite can be held against, with its source.
Scores in percent (``None``: not sourced); a run pairs with a row by its dataset, model, input and recipe,
read from the config that trained it (:func:`identify`, :func:`checkpoint_config`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fcn_lightning.nets.trunks import Trunk
from fcn_lightning.registry import (
    FCN8S,
    FCN8S_ATONCE,
    FCN16S,
    FCN16S_RGB_HHA,
    FCN32S,
    FCN32S_RGB_HHA,
    FCN_ALEXNET,
    FCN_GOOGLENET,
    FCN_POOL3,
    FCN_POOL4,
    FCN_POOL5,
    SIFTFLOW_FCN16S,
    ModelSpec,
)

#: The metrics the papers report, in their column order, with their titles.
METRIC_TITLES: dict[str, str] = {
    "pixel_acc": "pixel acc.",
    "mean_acc": "mean acc.",
    "mean_iu": "mean IU",
    "fw_iu": "f.w. IU",
    "geo_pixel_acc": "geom. acc.",
}

#: Each real dataset's data module, and the splits the papers trained and scored on (the layout's defaults,
#: a test holds them equal): a run on others, or on synthetic data, pairs with no row.
DATASETS: dict[str, tuple[str, str, str]] = {
    "voc": ("VOCDataModule", "sbd_train", "seg11valid"),
    "nyud": ("NYUDv2DataModule", "trainval", "test"),
    "siftflow": ("SIFTFlowDataModule", "trainval", "test"),
    "context": ("PascalContextDataModule", "train", "val"),
}


@dataclass(frozen=True)
class RunIdentity:
    """What a run is, for pairing it with a paper row (``splits``: trained and scored on, else default)."""

    dataset: str | None
    model: str | None
    input: str = "rgb"
    recipe: str = "reference"
    splits: tuple[str | None, str | None] = (None, None)


@dataclass(frozen=True)
class PaperRow:
    """One row of one of the papers' tables: the suite's model it is, its title and table in the paper,
    its source (``CVPR``, ``journal``, ``reference README``), the images it was scored on, its scores."""

    dataset: str
    model: ModelSpec
    title: str
    table: str
    source: str
    split: str
    scores: Mapping[str, float | None]
    input: str = "rgb"
    recipe: str = "reference"

    @property
    def identity(self) -> RunIdentity:
        return RunIdentity(self.dataset, self.model.name, self.input, self.recipe)

    @property
    def label(self) -> str:
        """``FCN-32s (journal Table 2)``: what a results table prints for the row."""
        return f"{self.title} ({self.table})"


def _row(
    dataset: str,
    model: ModelSpec,
    title: str,
    table: str,
    split: str,
    scores: Sequence[float | None],
    metrics: Sequence[str] = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"),
    **kind: str,
) -> PaperRow:
    source = "reference README" if table.startswith("reference") else table.split(",")[0].split()[0]
    return PaperRow(
        dataset, model, title, table, source, split, dict(zip(metrics, scores, strict=True)), **kind
    )


_UNKNOWN4 = (None, None, None, None)

#: Every row, by table. VOC: trained on SBD train, scored on seg11valid unless the split says otherwise.
PAPER_ROWS: tuple[PaperRow, ...] = (
    # Journal Table 2: the VGG16 FCNs, reference ("heavy", online) recipe.
    _row("voc", FCN32S, "FCN-32s", "journal Table 2", "seg11valid", (90.5, 76.5, 63.6, 83.5)),
    _row("voc", FCN16S, "FCN-16s", "journal Table 2", "seg11valid", (91.0, 78.1, 65.0, 84.3)),
    _row("voc", FCN8S_ATONCE, "FCN-8s at-once", "journal Table 2", "seg11valid", (91.1, 78.5, 65.4, 84.4)),
    _row("voc", FCN8S, "FCN-8s staged", "journal Table 2", "seg11valid", (91.2, 77.6, 65.5, 84.5)),
    _row(
        "voc", FCN32S, "FCN-32s fixed", "journal Table 2", "seg11valid", (82.9, 64.6, 46.6, 72.3),
        recipe="fixed",
    ),
    _row("voc", FCN_POOL5, "FCN-pool5", "journal Table 2", "seg11valid", (87.4, 60.5, 50.0, 78.5)),
    _row("voc", FCN_POOL4, "FCN-pool4", "journal Table 2", "seg11valid", (78.7, 31.7, 22.4, 67.0)),
    _row("voc", FCN_POOL3, "FCN-pool3", "journal Table 2", "seg11valid", (70.9, 13.7, 9.2, 57.6)),
    # CVPR Table 1 (mean IU only; the CVPR minibatch recipe; its timings are in TABLE1 below).
    _row("voc", FCN32S, "FCN-VGG16", "CVPR Table 1", "seg11valid", (56.0,), ("mean_iu",), recipe="cvpr"),
    _row("voc", FCN_GOOGLENET, "FCN-GoogLeNet", "CVPR Table 1", "seg11valid", (42.5,), ("mean_iu",)),
    # The reference's released FCN-AlexNet, its own solver (the CVPR paper's scored 39.8, see TABLE1).
    _row("voc", FCN_ALEXNET, "FCN-AlexNet", "reference README", "seg11valid", (48.0,), ("mean_iu",)),
    # VOC2012 test (scored by the evaluation server; listed, never paired with a validation run).
    _row("voc", FCN8S, "FCN-8s", "journal, VOC2012 test", "VOC2012 test", (67.2,), ("mean_iu",)),
    _row(
        "voc", FCN8S, "FCN-8s", "CVPR, VOC2012 test", "VOC2012 test", (62.2,), ("mean_iu",), recipe="cvpr"
    ),
    # CVPR Table 4: NYUDv2, 40 classes, trained on 795 images, scored on the 654 test images.
    _row("nyud", FCN32S, "FCN-32s RGB", "CVPR Table 4", "test", (60.0, 42.2, 29.2, 43.9)),
    _row("nyud", FCN32S, "FCN-32s RGBD", "CVPR Table 4", "test", (61.5, 42.4, 30.5, 45.5), input="rgbd"),
    _row("nyud", FCN32S, "FCN-32s HHA", "CVPR Table 4", "test", (57.1, 35.2, 24.2, 40.4), input="hha"),
    _row(
        "nyud", FCN32S_RGB_HHA, "FCN-32s RGB-HHA", "CVPR Table 4", "test", (64.3, 44.9, 32.8, 48.0),
        input="rgb-hha",
    ),
    _row(
        "nyud", FCN16S_RGB_HHA, "FCN-16s RGB-HHA", "CVPR Table 4", "test", (65.4, 46.1, 34.0, 49.5),
        input="rgb-hha",
    ),
    # CVPR Table 5: SIFT Flow, 33 semantic and 3 geometric classes, 200 test images; the two-headed FCN-16s.
    _row(
        "siftflow", SIFTFLOW_FCN16S, "FCN-16s", "CVPR Table 5", "test", (85.2, 51.7, 39.5, 76.1, 94.3),
        tuple(METRIC_TITLES),
    ),
    # PASCAL-Context (59 classes + background): the journal's numbers could not be sourced here.
    _row("context", FCN32S, "FCN-32s", "journal, PASCAL-Context", "val", _UNKNOWN4),
    _row("context", FCN16S, "FCN-16s", "journal, PASCAL-Context", "val", _UNKNOWN4),
    _row("context", FCN8S, "FCN-8s", "journal, PASCAL-Context", "val", _UNKNOWN4),
)  # fmt: skip


@dataclass(frozen=True)
class TrunkRow:
    """CVPR Table 1 for one trunk: its 32s net on VOC (500 x 500 inputs, forward time on a Tesla K40c)."""

    model: ModelSpec
    title: str
    mean_iu: float
    ms: int
    params_m: int
    receptive_field: int
    max_stride: int
    source: str = "CVPR Table 1"


#: CVPR Table 1 (the 32s nets of each trunk), by model name.
TABLE1: dict[str, TrunkRow] = {
    row.model.name: row
    for row in (
        TrunkRow(FCN_ALEXNET, "FCN-AlexNet", 39.8, 50, 57, 355, 32),
        TrunkRow(FCN32S, "FCN-VGG16", 56.0, 210, 134, 404, 32),
        TrunkRow(FCN_GOOGLENET, "FCN-GoogLeNet", 42.5, 59, 6, 907, 32),
    )
}


def paper_row(identity: RunIdentity) -> PaperRow | None:
    """The row a run is held against: same dataset, model, input and recipe, trained and scored on the
    papers' splits (the dataset's defaults); ``None`` when the papers have no such row."""
    if identity.dataset not in DATASETS:
        return None
    papers = DATASETS[identity.dataset][1:]
    if any(split not in (None, paper) for split, paper in zip(identity.splits, papers, strict=True)):
        return None
    identity = replace(identity, splits=(None, None))
    return next((row for row in PAPER_ROWS if row.identity == identity and row.split == papers[1]), None)


# ------------------------------------------------------------------------------ a run's identity


def identify(config: Mapping[str, Any]) -> RunIdentity:
    """What a run trained, from the ``model`` and ``data`` sections of its resolved config (a run's
    ``config.yaml``, or :func:`checkpoint_config`)."""
    from fcn_lightning.systems.classes import UnknownModelError, model_class  # the systems: when used

    model = config.get("model") or {}
    data = config.get("data") or {}
    model_args = model.get("init_args") or {}
    data_args = data.get("init_args") or {}
    data_class = str(data.get("class_path", "")).rsplit(".", 1)[-1]
    dataset = next((name for name, (cls, *_) in DATASETS.items() if cls == data_class), None)
    splits = (data_args.get("train_split"), data_args.get("val_split"))
    try:
        spec: ModelSpec | None = model_class(str(model.get("class_path", ""))).spec
    except UnknownModelError:
        spec = None
    modalities = tuple(data_args.get("modalities") or ("rgb",))
    input_kind = {("rgb",): "rgb", ("hha",): "hha", ("rgb", "depth"): "rgbd", ("rgb", "hha"): "rgb-hha"}.get(
        modalities, "-".join(modalities)
    )
    recipe = "reference"
    if model_args.get("train_only"):
        recipe = "fixed"
    elif spec is not None and spec.trunk is Trunk.VGG16 and model_args.get("loss_reduction") == "mean":
        recipe = "cvpr"
    return RunIdentity(dataset, spec.name if spec else None, input_kind, recipe, splits)


def checkpoint_config(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model`` and ``data`` sections of the config that trained a checkpoint: its hyperparameters
    and their ``_class_path`` (LightningCLI's), else the model the suite's own record names."""
    from fcn_lightning.systems.checkpoints import RECORD_KEY  # imports every system: only when used

    model = dict(checkpoint.get("hyper_parameters") or {})
    data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    record = checkpoint.get(RECORD_KEY) or {}
    return {
        "model": {"class_path": model.pop("_class_path", record.get("model")), "init_args": model},
        "data": {"class_path": data.pop("_class_path", None), "init_args": data},
    }


def format_points(value: float | None, signed: bool = False) -> str:
    """A percent value as the tables print it (``-`` for unknown)."""
    if value is None or value != value:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"
