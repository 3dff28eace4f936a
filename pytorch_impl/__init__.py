"""PyTorch implementation of Background Matting V2 that loads the official checkpoints unchanged."""
from .checkpoint import (CheckpointError, CheckpointInfo, describe, load_model, load_torchscript,
                         read_state_dict, save_state_dict)
from .matte import matte
from .model import BACKBONES, MattingBase, MattingRefine
from .refiner import CROP_METHODS, KERNEL_SIZES, MODES, REPLACE_METHODS, Refiner
from .torchscript import MattingRefineProduction, script_model

__all__ = ["BACKBONES", "CROP_METHODS", "KERNEL_SIZES", "MODES", "REPLACE_METHODS", "CheckpointError",
           "CheckpointInfo", "MattingBase", "MattingRefine", "MattingRefineProduction", "Refiner",
           "describe", "load_model", "load_torchscript", "matte", "read_state_dict", "save_state_dict",
           "script_model"]
