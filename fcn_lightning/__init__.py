"""fcn-lightning: the FCN paper reproduced with PyTorch Lightning."""
