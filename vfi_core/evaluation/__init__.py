"""Evaluation: benchmarks and their layouts (:mod:`.eval_sets`), scoring and speed (:mod:`.bench`),
quality metrics (:mod:`.metrics`), the optional perceptual metric and VGG features
(:mod:`.perceptual`), and sequence benchmarks through the pipeline (:mod:`.benchmarks`)."""
