"""What a generated dataset's DataModule adds to the real one: the dataset written on first use."""

from __future__ import annotations

from pathlib import Path

from fcn_lightning.data.synthetic.cache import dataset_folder, is_complete
from fcn_lightning.data.synthetic.template import DatasetGenerator

__all__ = ["GeneratedDatasetMixin"]


class GeneratedDatasetMixin:
    """Writes the generated dataset when absent (listed before the real DataModule in the bases). No
    ``__init__``: each subclass keeps its own signature, which LightningCLI reads, and passes
    :meth:`generated_root` on as the real one's ``root``."""

    generator: DatasetGenerator
    cache_root: Path

    def generated_root(self, root: str, generator: DatasetGenerator) -> str:
        """Remember the generator and return where its dataset lives under the cache folder ``root``."""
        self.generator = generator
        self.cache_root = Path(root).expanduser()
        return str(dataset_folder(root, generator))

    def record_generator(self) -> None:
        """Store the generator as plain data in the hyper-parameters (checkpoints load with
        ``weights_only=True``); call after the DataModule's ``__init__``."""
        self.hparams["generator"] = self.generator.to_dict()  # type: ignore[attr-defined]

    @property
    def dataset_root(self) -> Path:
        """Where the generated tree is (the reader's ``root``)."""
        return self.layout.root  # type: ignore[attr-defined]

    def prepare_data(self) -> None:
        """Write the dataset if it is not there yet (Lightning calls this once per node)."""
        self.generator.write(self.dataset_root)

    def _ensure_written(self) -> None:
        if not is_complete(self.dataset_root):  # used outside a Trainer, without prepare_data
            self.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self._ensure_written()
        super().setup(stage)  # type: ignore[misc]

    def check(self) -> list[str]:
        self._ensure_written()
        return super().check()  # type: ignore[misc]
