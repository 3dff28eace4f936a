"""Parity between formats, and the matting metrics shared with training validation."""
