"""The label of pixels never trained on nor scored (VOC's boundaries, unlabelled pixels, padding), as the
reference Caffe nets' ``ignore_label: 255``."""

#: Label of pixels left out of the loss and the metrics.
IGNORE_INDEX: int = 255
