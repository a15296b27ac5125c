"""What a run does besides the model: Lightning callbacks and run-time helpers.

``callbacks`` (prediction writer, W&B media, training curves), ``checkpoint_io`` (checkpoints written
atomically, loaded as data only), ``resume`` (resumable order, random states,
``last.ckpt``), ``divergence`` (stop on NaN / Inf), ``speed`` (channels_last, cuDNN autotuning, compile,
threads), ``distributed`` (strategy checks, process-group clean-up), ``loggers`` (W&B that goes offline by
itself), ``plots`` and ``progress`` (figures, plain-line progress); and the multi-run plans: ``staged``
(32s -> 16s -> 8s) and ``compare_sampling`` (patches against whole images).
"""
