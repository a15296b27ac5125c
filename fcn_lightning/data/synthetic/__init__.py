"""Generated datasets in the real datasets' on-disk layouts, for the tests and the CPU demos.

``template`` (a generator's parameters, fingerprinted, and how its files are written: each id drawn and
saved where its layout reads it, the lists, the manifest) <- ``config`` (the drawn scenes' parameters)
and ``scenes`` (drawing) <- one generator per layout (``voc``, ``siftflow``, ``context``; ``nyud``, which
renders rooms with ``indoor``), each filling in the template's hooks and writing through that dataset's
layout object so that the real reader reads it unchanged; ``cache`` writes a tree atomically, keyed by
the parameters, and ``module`` makes a generated dataset's DataModule. Nothing lower imports a generator.
"""

from fcn_lightning.data.synthetic.cache import (
    MANIFEST_NAME,
    SyntheticDatasetMismatchError,
    is_complete,
    write_dataset,
)
from fcn_lightning.data.synthetic.config import GENERATOR_VERSION, SceneConfig
from fcn_lightning.data.synthetic.context import (
    SyntheticContextConfig,
    SyntheticContextDataModule,
    write_synthetic_context,
)
from fcn_lightning.data.synthetic.nyud import (
    SyntheticNYUDConfig,
    SyntheticNYUDv2DataModule,
    render_nyud_sample,
    write_synthetic_nyud,
)
from fcn_lightning.data.synthetic.scenes import Scene, draw_scene
from fcn_lightning.data.synthetic.siftflow import (
    SyntheticSIFTFlowConfig,
    SyntheticSIFTFlowDataModule,
    write_synthetic_siftflow,
)
from fcn_lightning.data.synthetic.template import DatasetGenerator
from fcn_lightning.data.synthetic.voc import (
    SyntheticVOCConfig,
    SyntheticVOCDataModule,
    render_sample,
    write_synthetic_voc,
)

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "DatasetGenerator",
    "Scene",
    "SceneConfig",
    "SyntheticContextConfig",
    "SyntheticContextDataModule",
    "SyntheticDatasetMismatchError",
    "SyntheticNYUDConfig",
    "SyntheticNYUDv2DataModule",
    "SyntheticSIFTFlowConfig",
    "SyntheticSIFTFlowDataModule",
    "SyntheticVOCConfig",
    "SyntheticVOCDataModule",
    "draw_scene",
    "is_complete",
    "render_nyud_sample",
    "render_sample",
    "write_dataset",
    "write_synthetic_context",
    "write_synthetic_nyud",
    "write_synthetic_siftflow",
    "write_synthetic_voc",
]
