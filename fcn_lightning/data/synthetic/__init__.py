"""Generated datasets in the real datasets' on-disk layouts, for the tests and the CPU demos: one generator
per layout on the shared ``template``, written atomically by ``cache``."""

from fcn_lightning.data.synthetic.cache import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SyntheticDatasetMismatchError,
    is_complete,
    write_dataset,
)
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
from fcn_lightning.data.synthetic.scenes import Scene, SceneConfig, draw_scene
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
