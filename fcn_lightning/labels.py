"""Label conventions shared by the datasets, the loss and the metrics.

Every dataset maps its labels to ``0 .. num_classes - 1`` and marks pixels that must not be scored or
trained on (VOC's object boundaries, NYUDv2's and SIFT Flow's unlabelled pixels, padding) with
:data:`IGNORE_INDEX`, as the reference Caffe nets do with their ``ignore_label: 255``.
"""

#: Label of pixels left out of the loss and the metrics.
IGNORE_INDEX: int = 255
