"""PyTorch references: the models tfrec ports and one plain training loop (needs torch)."""
