"""Training: synthetic data, folder datasets, losses and the training loop behind `bgmv2 train`."""
