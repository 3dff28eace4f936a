"""Speed and arithmetic measurements of the PyTorch implementation."""
