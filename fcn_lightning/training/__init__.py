"""What a run does besides the model: Lightning callbacks and run-time helpers, and the multi-run plans
(``staged``, ``compare_sampling``)."""
