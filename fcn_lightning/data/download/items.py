"""Every file ``fcn-lightning download`` fetches, where from and where to; checksums only from a source the
row names (else the manifest route), sizes the hosts' own figures or estimates (``~``: 4 bytes a weight)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fcn_lightning.nets.caffe import (
    CAFFENET_CAFFEMODEL,
    CAFFENET_CAFFEMODEL_URL,
    VGG16_CAFFEMODEL,
    VGG16_CAFFEMODEL_URL,
)

__all__ = [
    "DATASETS",
    "GROUPS",
    "ITEMS",
    "WEIGHTS",
    "Checksum",
    "DatasetUse",
    "Item",
    "UnknownItemError",
    "resolve_names",
]

#: The destination of weights files: the weights folder ($FCN_WEIGHTS, else $FCN_DATA/weights).
WEIGHTS = "weights"


@dataclass(frozen=True)
class Checksum:
    """A published digest of a file and where it is published."""

    algorithm: str  # a hashlib name: "md5", "sha1", "sha256"
    digest: str
    source: str


@dataclass(frozen=True)
class Item:
    """One file to fetch: the name ``download`` takes, what it is, its sources, where it goes."""

    name: str
    title: str
    file: str  # the file's own name (what ``--mirror`` fetches, where the manual route puts it)
    urls: tuple[str, ...]  # tried in this order
    source: str  # where those addresses are published
    dataset: str  # the folder under the data root it unpacks into (``voc``, ...), or WEIGHTS
    size: str  # as the host states it, ``"~..."`` for an estimate, ``""`` unknown
    checksum: Checksum | None = None  # a published digest, or None: the manifest route
    #: An archive's kept paths (at its top or inside one enclosing folder), each placed at the same path
    #: under the dataset's root; empty for a file kept whole. ``optional``: kept when the archive has them.
    products: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    #: A released FCN's configs (and overrides) that train and score it (``convert-caffe``, ``validate``).
    validate: tuple[str, ...] = ()

    @property
    def is_archive(self) -> bool:
        return bool(self.products)

    @property
    def configs(self) -> tuple[str, ...]:
        """A released FCN's ``--config`` arguments, which ``convert-caffe`` takes its model from."""
        return self.validate[:4]


TORCHVISION_VOC = "torchvision/datasets/voc.py (pytorch/vision), DATASET_YEAR_DICT"
TORCHVISION_SBD = "torchvision/datasets/sbd.py (pytorch/vision), SBDataset.md5"
REFERENCE = "the authors' repository shelhamer/fcn.berkeleyvision.org"
#: The VOC archives' addresses: torchvision's today (the servers' long-term one), then the old host, which
#: torchvision named before and which now redirects there.
VOC_HOSTS = ("https://thor.robots.ox.ac.uk/pascal/VOC", "http://host.robots.ox.ac.uk/pascal/VOC")
RELEASES = "http://dl.caffe.berkeleyvision.org"
CAFFENET_README = "BVLC/caffe models/bvlc_reference_caffenet/readme.md"


def _release(name: str, title: str, size: str, config: str, imagenet_start: bool) -> Item:
    """An FCN the authors released (``caffemodel-url`` of its model folder), scored by its folder's base.yaml
    and ``config``; a config that starts from ImageNet gets ``init_from: null`` (the checkpoint holds all)."""
    file = f"{name}.caffemodel"
    validate = ("--config", f"configs/{config.split('/')[0]}/base.yaml", "--config", f"configs/{config}")
    return Item(
        name=name,
        title=title,
        file=file,
        urls=(f"{RELEASES}/{file}",),
        source=f"{REFERENCE}, caffemodel-url of its model folder",
        dataset=WEIGHTS,
        size=size,
        checksum=RELEASE_CHECKSUMS.get(name),
        validate=(*validate, "--model.init_args.init_from", "null") if imagenet_start else validate,
    )


#: The released FCNs: name (the file's stem), what it is, size, the config that trains and scores it and
#: whether that config starts from ImageNet. Their paper scores are paper.py's.
_RELEASED_FCNS = (
    ("fcn32s-heavy-pascal", "VOC FCN-32s", "~540 MB", "voc/fcn32s.yaml", True),
    ("fcn16s-heavy-pascal", "VOC FCN-16s", "~540 MB", "voc/fcn16s.yaml", False),
    ("fcn8s-heavy-pascal", "VOC FCN-8s", "~540 MB", "voc/fcn8s.yaml", False),
    ("fcn8s-atonce-pascal", "VOC FCN-8s at-once", "~540 MB", "voc/fcn8s_atonce.yaml", True),
    ("fcn-alexnet-pascal", "VOC FCN-AlexNet", "~235 MB", "voc/fcn_alexnet.yaml", True),
    ("nyud-fcn32s-color-heavy", "NYUDv2 FCN-32s colour", "~540 MB", "nyud/fcn32s_rgb.yaml", True),
    ("nyud-fcn32s-hha-heavy", "NYUDv2 FCN-32s HHA", "~540 MB", "nyud/fcn32s_hha.yaml", True),
    ("nyud-fcn32s-color-hha-heavy", "NYUDv2 FCN-32s colour-HHA late fusion", "~1.1 GB",
     "nyud/fcn32s_rgb_hha.yaml", False),
    ("siftflow-fcn32s-heavy", "SIFT Flow FCN-32s, two heads", "~540 MB", "siftflow/fcn32s.yaml", True),
    ("siftflow-fcn16s-heavy", "SIFT Flow FCN-16s, two heads", "~540 MB", "siftflow/fcn16s.yaml", False),
    ("siftflow-fcn8s-heavy", "SIFT Flow FCN-8s, two heads", "~540 MB", "siftflow/fcn8s.yaml", False),
    ("pascalcontext-fcn32s-heavy", "PASCAL-Context FCN-32s", "~540 MB", "context/fcn32s.yaml", True),
    ("pascalcontext-fcn16s-heavy", "PASCAL-Context FCN-16s", "~540 MB", "context/fcn16s.yaml", False),
    ("pascalcontext-fcn8s-heavy", "PASCAL-Context FCN-8s", "~540 MB", "context/fcn8s.yaml", False),
)  # fmt: skip
#: Published digests of released FCNs (the authors publish none).
OPENCV_EXTRA = "opencv/opencv_extra testdata/dnn/download_models.py"
RELEASE_CHECKSUMS = {
    "fcn8s-heavy-pascal": Checksum("sha1", "c449ea74dd7d83751d1357d6a8c323fcf4038962", OPENCV_EXTRA)
}

_ITEMS = (
    Item(
        name="voc2012",
        title="PASCAL VOC2012 trainval (images, segmentation labels and lists)",
        file="VOCtrainval_11-May-2012.tar",
        urls=(
            *(f"{host}/voc2012/VOCtrainval_11-May-2012.tar" for host in VOC_HOSTS),
            "https://pjreddie.com/media/files/VOCtrainval_11-May-2012.tar",
        ),
        source="torchvision's voc.py (today's host, then the VOC pages'); the last: the VOC mirror of "
        "pjreddie.com (its darknet VOC pages)",
        dataset="voc",
        size="2 GB",
        checksum=Checksum("md5", "6cd6e144f989b92b3379bac3b3de84fd", TORCHVISION_VOC),
        products=("VOCdevkit/VOC2012",),
    ),
    Item(
        name="sbd",
        title="SBD (Hariharan et al.): the 8,498 training images and their labels",
        file="benchmark.tgz",
        urls=(
            "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
            "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
        ),
        source=f"torchvision's sbd.py; then {REFERENCE}, data/pascal/README.md",
        dataset="voc",
        size="",
        checksum=Checksum("md5", "82b4d87ceb2ed10f6038a1cba92111cb", TORCHVISION_SBD),
        products=("benchmark_RELEASE/dataset",),
    ),
    Item(
        name="voc2011",
        title="PASCAL VOC2011 trainval: its segmentation lists (seg11valid = VOC2011 val minus SBD train)",
        file="VOCtrainval_25-May-2011.tar",
        urls=tuple(f"{host}/voc2011/VOCtrainval_25-May-2011.tar" for host in VOC_HOSTS),
        source="torchvision's voc.py (today's host, then the VOC pages')",
        dataset="voc",
        size="1.7 GB",
        checksum=Checksum("md5", "6c3384ef61512963050cb5d687e5bf1e", TORCHVISION_VOC),
        products=("TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation",),
    ),
    Item(
        name="nyud-prepared",
        title="NYUDv2 as the authors prepared it (colour, filled depth, 40-class labels)",
        file="nyud.tar.gz",
        urls=(f"{RELEASES}/nyud.tar.gz",),
        source=f"{REFERENCE}, data/nyud/README.md",
        dataset="nyud",
        size="",
        products=("data/images", "data/depth", "segmentation"),
        optional=("data/hha", "train.txt", "val.txt", "test.txt", "trainval.txt"),
    ),
    Item(
        name="nyud-rawdepth",
        title="NYUDv2 raw (unfilled) depth from Gupta et al.'s data, for HHA's missing pixels",
        file="eccv14-data.tgz",
        urls=(
            "https://www.dropbox.com/s/upuvhbjh4nbji02/eccv14-data.tgz?dl=1",
            "http://www.cs.berkeley.edu/~sgupta/eccv14/eccv14-data.tgz",
        ),
        source="README.md of s-gupta/rcnn-depth (Dropbox today, the Berkeley address until 2016)",
        dataset="nyud",
        size="",
        products=("data/rawdepth",),
    ),
    Item(
        name="siftflow",
        title="SIFT Flow (2,688 images, semantic and geometric labels)",
        file="SiftFlowDataset.zip",
        urls=("http://www.cs.unc.edu/~jtighe/Papers/ECCV10/siftflow/SiftFlowDataset.zip",),
        source=f"{REFERENCE}, data/sift-flow/README.md",
        dataset="sift-flow",
        size="~140 MB",
        products=("Images", "SemanticLabels", "GeoLabels"),
    ),
    Item(
        name="voc2010",
        title="PASCAL VOC2010 trainval: PASCAL-Context's images and train / val lists",
        file="VOCtrainval_03-May-2010.tar",
        urls=tuple(f"{host}/voc2010/VOCtrainval_03-May-2010.tar" for host in VOC_HOSTS),
        source="torchvision's voc.py (today's host, then the VOC pages')",
        dataset="pascal-context",
        size="1.3 GB",
        checksum=Checksum("md5", "da459979d0c395079b5c75ee67908abb", TORCHVISION_VOC),
        products=("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/ImageSets/Main"),
    ),
    Item(
        name="context-labels",
        title="PASCAL-Context annotations (trainval/*.mat) and labels.txt, the full label space",
        file="trainval.tar.gz",
        urls=("https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",),
        source="the PASCAL-Context page (named in the authors' data/pascal-context/README.md)",
        dataset="pascal-context",
        size="31 MB",
        products=("trainval", "labels.txt"),
    ),
    Item(
        name="vgg16-caffe",
        title="the Caffe ImageNet VGG16 every paper-table config starts from",
        file=VGG16_CAFFEMODEL,
        urls=(VGG16_CAFFEMODEL_URL,),
        source="the VGG model zoo page, gist ksimonyan/211839e770f7b538e2d8 (in the authors' ilsvrc-nets)",
        dataset=WEIGHTS,
        size="553 MB",
    ),
    Item(
        name="caffenet",
        title="the Caffe ImageNet CaffeNet FCN-AlexNet starts from",
        file=CAFFENET_CAFFEMODEL,
        urls=(CAFFENET_CAFFEMODEL_URL,),
        source="BVLC/caffe models/bvlc_reference_caffenet/readme.md (the authors' ilsvrc-nets/README.md)",
        dataset=WEIGHTS,
        size="~244 MB",
        checksum=Checksum("sha1", "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46", CAFFENET_README),
    ),
    *(_release(*row) for row in _RELEASED_FCNS),
)

#: Every item by name, in the order ``--list`` prints them.
ITEMS: dict[str, Item] = {item.name: item for item in _ITEMS}
_DATA = tuple(name for name, item in ITEMS.items() if item.dataset != WEIGHTS)

#: Names for sets of items.
GROUPS: dict[str, tuple[str, ...]] = {
    "voc": ("voc2012", "sbd", "voc2011"),
    "nyud": ("nyud-prepared", "nyud-rawdepth"),
    "pascal-context": ("voc2010", "context-labels"),
    "paper": (*_DATA, "vgg16-caffe", "caffenet"),
    "released": tuple(name for name, item in ITEMS.items() if item.validate),
}


@dataclass(frozen=True)
class DatasetUse:
    """A dataset folder the items fill: what its loaders cannot do without, and how the suite reads it."""

    configs: str  # its config folder; base.yaml reads the data from <data root>/<folder>
    needs: tuple[str, ...]  # items without which its DataModule cannot run
    data_module: str  # the DataModule check-data builds from base.yaml


#: Every destination folder under the data root (an item's ``dataset``), by name.
DATASETS: dict[str, DatasetUse] = {
    "voc": DatasetUse("configs/voc", ("voc2012", "sbd"), "fcn_lightning.data.VOCDataModule"),
    "nyud": DatasetUse("configs/nyud", ("nyud-prepared",), "fcn_lightning.data.NYUDv2DataModule"),
    "sift-flow": DatasetUse("configs/siftflow", ("siftflow",), "fcn_lightning.data.SIFTFlowDataModule"),
    "pascal-context": DatasetUse(
        "configs/context", ("voc2010", "context-labels"), "fcn_lightning.data.PascalContextDataModule"
    ),
}


class UnknownItemError(ValueError):
    """A name that is neither an item nor a group."""


def resolve_names(names: list[str] | tuple[str, ...]) -> list[Item]:
    """The items ``names`` (items or groups, in any case) stand for, each once, in the order given."""
    chosen: dict[str, Item] = {}
    known = [*ITEMS, *GROUPS]
    for name in (n.lower() for n in names):
        if name in GROUPS:
            chosen.update((member, ITEMS[member]) for member in GROUPS[name])
        elif name in ITEMS:
            chosen[name] = ITEMS[name]
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownItemError(
                f"unknown item {name!r}{hint} (fcn-lightning download --list shows them all: "
                f"{', '.join(known)})"
            )
    return list(chosen.values())
