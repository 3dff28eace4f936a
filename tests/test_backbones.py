"""Encoders return five maps at 1/16, 1/8, 1/4, 1/2 and 1/1 with the documented channels."""
import pytest
import torch

from bgmv2.pytorch_impl.mobilenet import MobileNetV2Encoder
from bgmv2.pytorch_impl.model import Base
from bgmv2.pytorch_impl.resnet import ResNetEncoder

CHANNELS = {"mobilenetv2": (320, 32, 24, 16, 6), "resnet50": (2048, 512, 256, 64, 6),
            "resnet101": (2048, 512, 256, 64, 6)}


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
def test_encoder_strides_and_channels(backbone):
    encoder = MobileNetV2Encoder(6) if backbone == "mobilenetv2" else ResNetEncoder(6, backbone)
    x = torch.rand(1, 6, 64, 96)
    with torch.no_grad():
        features = encoder.eval()(x)
    for feature, stride, channels in zip(features, (16, 8, 4, 2, 1), CHANNELS[backbone]):
        assert feature.shape == (1, channels, 64 // stride, 96 // stride)
    assert features[-1] is x


def test_mobilenet_dilation_and_strides_as_documented():
    features = MobileNetV2Encoder(6).features
    assert features[14].conv[1][0].stride == (1, 1) and features[14].conv[1][0].dilation == (1, 1)
    for block in features[15:]:
        assert block.conv[1][0].dilation == (2, 2) and block.conv[1][0].padding == (2, 2)
    assert len(features) == 18


def test_resnet_layer4_dilates_instead_of_striding():
    layer4 = ResNetEncoder(6, "resnet50").layer4
    assert layer4[0].conv2.stride == (1, 1) and layer4[0].conv2.dilation == (1, 1)
    assert layer4[0].downsample[0].stride == (1, 1)
    assert all(block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2) for block in layer4[1:])


def test_odd_sizes_flow_through_the_decoder():
    base = Base("mobilenetv2").eval()
    with torch.no_grad():
        out = base(torch.rand(1, 6, 50, 70))
    assert out.shape == (1, 37, 50, 70)


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="backbone='vgg16' is not supported; choose one of mobilenetv2"):
        Base("vgg16")
