"""MattingBase and MattingRefine (Keras 3, NHWC), with the official constructor arguments, defaults and outputs."""
import keras
from keras import ops

from .aspp import ASPP
from .decoder import Decoder
from .inputs import (check_backbone_scale, check_divisible_by_4, check_pair, check_scaled_size,
                     static_shape)
from .layers import named_layers
from .mobilenet import MobileNetV2Encoder
from bgmv2.knobs import check_knob, check_knobs
from .refiner import Refiner
from .resize import resize_bilinear, scaled_size
from .resnet import ResNetEncoder
from .tf_ops import assert_runtime_shapes

BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
# Output channels of the decoder: alpha, foreground residual (3), error, hidden (32).
OUT_CHANNELS = 1 + 3 + 1 + 32


class Base(keras.Model):
    """Encoder (backbone) + ASPP + decoder: 6 input channels to 37 at the input resolution.

    Every layer is built on construction (weights exist at once, as in PyTorch). `dtype` is a Keras
    dtype policy such as "mixed_float16" and applies to every sublayer.
    """

    def __init__(self, backbone: str, in_channels: int = 6, out_channels: int = OUT_CHANNELS,
                 dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r} is not supported; choose one of {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        if backbone == "mobilenetv2":
            self.backbone = MobileNetV2Encoder(in_channels)
            self.aspp = ASPP(320, (3, 6, 9))
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [32, 24, 16, in_channels])
        else:
            self.backbone = ResNetEncoder(in_channels, variant=backbone)
            self.aspp = ASPP(2048, (3, 6, 9))
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [512, 256, 64, in_channels])

    def finish_construction(self) -> None:
        """Mark every container built (their leaves built themselves) and give them the model's policy."""
        for _, layer in named_layers(self):
            if layer is not self and self.dtype_policy.name != layer.dtype_policy.name:
                layer.dtype_policy = self.dtype_policy
            layer.built = True

    def run_network(self, x):
        x4, x3, x2, x1, x0 = self.backbone(x)
        return self.decoder(self.aspp(x4), x3, x2, x1, x0)

    def call(self, x):
        return self.run_network(x)


@keras.saving.register_keras_serializable(package="bgmv2")
class MattingBase(Base):
    """The base network alone: `(pha, fgr, err, hid)` at the input resolution, NHWC."""

    def __init__(self, backbone: str, dtype=None, **kwargs):
        super().__init__(backbone, in_channels=6, out_channels=OUT_CHANNELS, dtype=dtype, **kwargs)
        self.finish_construction()

    def __call__(self, src, bgr, **kwargs):
        check_pair(src, bgr)  # before Keras converts and casts the inputs
        return super().__call__(src, bgr, **kwargs)

    def call(self, src, bgr):
        src = assert_runtime_shapes(src, bgr)
        x = self.run_network(ops.concatenate([src, bgr], axis=-1))
        pha = ops.clip(x[..., 0:1], 0.0, 1.0)
        fgr = ops.clip(x[..., 1:4] + src, 0.0, 1.0)
        err = ops.clip(x[..., 4:5], 0.0, 1.0)
        hid = ops.relu(x[..., 5:])
        return pha, fgr, err, hid

    def get_config(self):
        return {"backbone": self.backbone_name, "name": self.name, "dtype": self.dtype_policy.name}


@keras.saving.register_keras_serializable(package="bgmv2")
class MattingRefine(MattingBase):
    """Base network at `backbone_scale`, then the refiner at full resolution.

    Returns `(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)`, NHWC: alpha and foreground at full
    resolution, the coarse alpha, foreground and error at `backbone_scale`, and the 0/1 map of
    refined 4x4 cells. The arguments and defaults are the official ones; `refine_static_shapes`
    (not in upstream) picks the data-independent `sampling` path with identical results.
    """

    def __init__(self, backbone: str, backbone_scale: float = 1 / 4, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1,
                 refine_kernel_size: int = 3, refine_prevent_oversampling: bool = True,
                 refine_patch_crop_method: str = "unfold", refine_patch_replace_method: str = "scatter_nd",
                 refine_static_shapes: bool = False, dtype=None, **kwargs):
        check_knobs(dict(backbone_scale=backbone_scale, refine_mode=refine_mode,
                         refine_sample_pixels=refine_sample_pixels, refine_threshold=refine_threshold,
                         refine_kernel_size=refine_kernel_size, refine_prevent_oversampling=refine_prevent_oversampling,
                         refine_patch_crop_method=refine_patch_crop_method,
                         refine_patch_replace_method=refine_patch_replace_method,
                         refine_static_shapes=refine_static_shapes))  # before anything is built
        Base.__init__(self, backbone, in_channels=6, out_channels=OUT_CHANNELS, dtype=dtype, **kwargs)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling, refine_patch_crop_method,
                               refine_patch_replace_method, refine_static_shapes)
        self.finish_construction()

    def __setattr__(self, name: str, value) -> None:
        if name == "backbone_scale":  # settable after construction, as upstream allows
            value = float(check_knob("backbone_scale", value))
        super().__setattr__(name, value)

    def __call__(self, src, bgr, **kwargs):
        check_pair(src, bgr)
        shape = static_shape(src)
        if shape is not None:
            check_divisible_by_4(shape[1], shape[2])
            check_backbone_scale(self.backbone_scale)
            check_scaled_size(shape[1], shape[2], self.backbone_scale)
        return super().__call__(src, bgr, **kwargs)

    def call(self, src, bgr):
        src = assert_runtime_shapes(src, bgr, self.backbone_scale)
        _, height, width, _ = ops.shape(src)
        small = (scaled_size(height, self.backbone_scale), scaled_size(width, self.backbone_scale))
        src_sm = resize_bilinear(src, *small)
        bgr_sm = resize_bilinear(bgr, *small)
        x = self.run_network(ops.concatenate([src_sm, bgr_sm], axis=-1))
        pha_sm = ops.clip(x[..., 0:1], 0.0, 1.0)
        fgr_sm = x[..., 1:4]
        err_sm = ops.clip(x[..., 4:5], 0.0, 1.0)
        hid_sm = ops.relu(x[..., 5:])

        pha, fgr, ref_sm = self.refiner(src, bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        pha = ops.clip(pha, 0.0, 1.0)
        fgr = ops.clip(fgr + ops.cast(src, fgr.dtype), 0.0, 1.0)
        fgr_sm = ops.clip(src_sm + fgr_sm, 0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm

    def get_config(self):
        refiner = self.refiner
        return {**super().get_config(), "backbone_scale": self.backbone_scale,
                "refine_mode": refiner.mode, "refine_sample_pixels": refiner.sample_pixels,
                "refine_threshold": refiner.threshold, "refine_kernel_size": refiner.kernel_size,
                "refine_prevent_oversampling": refiner.prevent_oversampling,
                "refine_patch_crop_method": refiner.patch_crop_method,
                "refine_patch_replace_method": refiner.patch_replace_method,
                "refine_static_shapes": refiner.static_shapes}
