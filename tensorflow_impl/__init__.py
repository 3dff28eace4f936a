"""Keras 3 (TensorFlow backend) implementation of Background Matting V2, NHWC, mirroring `pytorch_impl`.

Same classes, constructor arguments, defaults and output order as the PyTorch models; weights move
both ways through `load_torch_state_dict` / `torch_state_dict` (official PyTorch layout).
"""
from .checkpoint import CheckpointError, load_model
from .matte import matte
from .model import BACKBONES, MattingBase, MattingRefine
from .refiner import CROP_METHODS, KERNEL_SIZES, MODES, REPLACE_METHODS, Refiner
from .resize import resize_bilinear
from .weights import LoadReport, StateDictError, load_torch_state_dict, torch_state_dict

__all__ = ["CheckpointError", "load_model", "BACKBONES", "CROP_METHODS", "KERNEL_SIZES", "LoadReport", "MODES", "MattingBase", "MattingRefine",
           "REPLACE_METHODS", "Refiner", "StateDictError", "load_torch_state_dict", "matte", "resize_bilinear",
           "torch_state_dict"]
