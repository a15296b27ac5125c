"""Generated datasets in the real datasets' on-disk layouts, for the tests and the CPU demos: one generator
per layout on the shared ``template``, written atomically. Each module's ``__all__`` is what
this package (and ``fcn_lightning.data``) exports of it."""

from fcn_lightning.data.synthetic import context, nyud, scenes, siftflow, template, voc
from fcn_lightning.data.synthetic.context import *  # noqa: F403
from fcn_lightning.data.synthetic.nyud import *  # noqa: F403
from fcn_lightning.data.synthetic.scenes import *  # noqa: F403
from fcn_lightning.data.synthetic.siftflow import *  # noqa: F403
from fcn_lightning.data.synthetic.template import *  # noqa: F403
from fcn_lightning.data.synthetic.voc import *  # noqa: F403

__all__ = [
    *context.__all__,
    *nyud.__all__,
    *scenes.__all__,
    *siftflow.__all__,
    *template.__all__,
    *voc.__all__,
]
