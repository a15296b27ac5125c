"""fcn-lightning: Fully Convolutional Networks (Long, Shelhamer, Darrell) reproduced with PyTorch Lightning.
Exports each row's LightningModule, imported when first read (``--help`` imports neither torch nor Lightning).
"""

import importlib
import importlib.abc
import importlib.util
import pkgutil
import sys
from typing import Any

__version__ = "0.1.0"

#: Exports of the registry; every other is the systems' (``fcn_lightning.<Class>``: the recorded class path).
_REGISTRY_EXPORTS = ("MODELS", "ModelSpec")
#: The package's own modules and folders: never exports (``from fcn_lightning import data`` imports it).
_SUBMODULES = frozenset(module.name for module in pkgutil.iter_modules(__path__))


def __getattr__(name: str) -> Any:
    """An export, imported on first use (PEP 562)."""
    if name in _REGISTRY_EXPORTS:
        return getattr(importlib.import_module("fcn_lightning.registry"), name)
    if (name.startswith("__") and name != "__all__") or name in _SUBMODULES or name in _MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    systems = importlib.import_module("fcn_lightning.systems")
    if name == "__all__":
        return ["__version__", *_REGISTRY_EXPORTS, *systems.__all__]
    if name not in systems.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(systems, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})


#: Modules once directly under the package: configs, sweeps, W&B runs and checkpoints naming them work.
MOVED_MODULES: dict[str, str] = {
    "fcn_lightning.callbacks": "fcn_lightning.training.callbacks",
    "fcn_lightning.checkpoints": "fcn_lightning.systems.checkpoints",
    "fcn_lightning.convert": "fcn_lightning.cli.convert_caffe",
    "fcn_lightning.describe": "fcn_lightning.cli.describe",
    "fcn_lightning.distributed": "fcn_lightning.training.distributed",
    "fcn_lightning.divergence": "fcn_lightning.training.divergence",
    "fcn_lightning.fusion": "fcn_lightning.systems.fusion",
    "fcn_lightning.loggers": "fcn_lightning.training.loggers",
    "fcn_lightning.plots": "fcn_lightning.training.plots",
    "fcn_lightning.progress": "fcn_lightning.training.progress",
    "fcn_lightning.resume": "fcn_lightning.training.resume",
    "fcn_lightning.sampling": "fcn_lightning.training.compare_sampling",
    "fcn_lightning.siftflow": "fcn_lightning.systems.siftflow",
    "fcn_lightning.speed": "fcn_lightning.training.speed",
    "fcn_lightning.staged": "fcn_lightning.training.staged",
    "fcn_lightning.zoo": "fcn_lightning.systems.zoo",
}

_MOVED_NAMES = frozenset(path.rpartition(".")[2] for path in MOVED_MODULES)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module at its new place (one module object under both names)."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        """Nothing to run: the module at the new place is already imported."""


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
