"""Training data: real frame sources, synthetic motion, the dev-benchmark split."""
