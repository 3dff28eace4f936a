"""`keras`: Keras 3 weights (`.weights.h5`) of the `tensorflow_impl` model, NHWC; metadata (JSON)
in the HDF5 root attribute `bgmv2_metadata`. Knobs at load time."""
from . import tf_formats

NAME = "keras"
DESCRIPTION = "Keras 3 weights (.weights.h5, metadata in the HDF5 attributes)"
LAYOUT = "NHWC"
SIDE = "tf"
SUFFIXES = (".weights.h5", ".h5")
PRECISIONS = ("fp32",)
RUNTIMES = ("tensorflow",)
KNOBS_AT_LOAD = True


def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    from .detection import KERAS_WEIGHTS
    return kind in (KERAS_WEIGHTS, file_kinds.HDF5)


def read(path):
    return tf_formats.read_keras(path)


def prepare(job) -> dict:
    return tf_formats.versions()


def write(spec, path, metadata, job) -> None:
    tf_formats.write_keras(spec, path, metadata)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return tf_formats.load_keras(path, knobs, device, precision, **options)


def info(path) -> dict:
    return tf_formats.keras_metadata(path)
