"""The paper's data and weights, fetched into the places the configs read (``fcn-lightning download``):
``items`` (the table) <- ``fetch``, ``unpack``, ``manifest`` <- ``installer`` (one item into place)."""

from fcn_lightning.data.download import fetch as _fetch
from fcn_lightning.data.download import installer, items, manifest, unpack
from fcn_lightning.data.download.fetch import *  # noqa: F403
from fcn_lightning.data.download.installer import *  # noqa: F403
from fcn_lightning.data.download.items import *  # noqa: F403
from fcn_lightning.data.download.manifest import *  # noqa: F403
from fcn_lightning.data.download.unpack import *  # noqa: F403

__all__ = [*_fetch.__all__, *installer.__all__, *items.__all__, *manifest.__all__, *unpack.__all__]
