"""Generated datasets in the real datasets' on-disk layouts, for the tests and the CPU demos.

``config`` (generator parameters) <- ``scenes`` (drawing) and ``cache`` (atomic, fingerprinted
writing) <- one writer per layout (``voc``, ``siftflow``, ``context``; ``nyud``, which renders rooms
with ``indoor``), which writes through that dataset's layout object so the real reader reads it
unchanged. Nothing lower imports a writer.
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
from fcn_lightning.data.synthetic.voc import (
    SyntheticVOCConfig,
    SyntheticVOCDataModule,
    render_sample,
    synthetic_splits,
    write_synthetic_voc,
)

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
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
    "synthetic_splits",
    "write_dataset",
    "write_synthetic_context",
    "write_synthetic_nyud",
    "write_synthetic_siftflow",
    "write_synthetic_voc",
]
