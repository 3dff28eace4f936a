"""`.pt2` archives whose payloads torch.export.load would unpickle are refused before torch sees them."""
import io
import json
import zipfile

import pytest
import torch

from bgmv2.converters import ConversionError
from bgmv2.converters.api import read
from bgmv2.converters.pt2_safety import check_pt2
from test_detect import Payload


@pytest.fixture
def tiny_pt2(tmp_path):
    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2),)), path)
    return path


def rewrite(source, dest, change):
    """Copy the zip archive `source` to `dest`, passing each member through `change(name, data)`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info.filename)))


def evil_pickle(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save({"x": Payload(str(marker))}, buffer)
    return buffer.getvalue()


def test_plain_archive_passes(tiny_pt2):
    check_pt2(str(tiny_pt2))


def test_pickled_weight_is_refused_and_never_run(tiny_pt2, tmp_path):
    marker = tmp_path / "pickled-code-ran"

    def change(name, data):
        if name.endswith("weights_config.json"):
            config = json.loads(data)
            config["config"]["weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            return evil_pickle(marker)
        return data
    evil = tmp_path / "evil.pt2"
    rewrite(tiny_pt2, evil, change)
    with pytest.raises(ConversionError, match="pickled objects that loading would execute: weight"):
        read(evil, "pt2")
    assert not marker.exists()


def test_unsafe_sample_inputs_are_refused(tiny_pt2, tmp_path):
    marker = tmp_path / "pickled-code-ran"
    evil = tmp_path / "evil.pt2"
    rewrite(tiny_pt2, evil, lambda name, data: evil_pickle(marker) if "/data/sample_inputs/" in name else data)
    with pytest.raises(ConversionError, match="sample inputs the safe loader refuses"):
        read(evil, "pt2")
    assert not marker.exists()


def test_object_constants_are_refused(tiny_pt2, tmp_path):
    def change(name, data):
        if name.endswith("constants_config.json"):
            return json.dumps({"config": {"obj": {"path_name": "opaque_obj_0"}}}).encode()
        return data
    evil = tmp_path / "evil.pt2"
    rewrite(tiny_pt2, evil, change)
    with pytest.raises(ConversionError, match="object 'opaque_obj_0'"):
        check_pt2(str(evil))
