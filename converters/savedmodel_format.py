"""`savedmodel`: a TensorFlow SavedModel folder, serving signature `serving_default(src, bgr)` ->
`pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm` (NHWC); metadata in `assets/bgmv2.json`. Knobs fixed."""
import os

from . import tf_formats

NAME = "savedmodel"
DESCRIPTION = "TensorFlow SavedModel folder (serving signature src, bgr -> pha, fgr, ...)"
LAYOUT = "NHWC"
SIDE = "tf"
SUFFIXES = ()
PRECISIONS = ("fp32",)
RUNTIMES = ("tensorflow",)
KNOBS_AT_LOAD = False


def claims_name(path) -> bool:
    """A folder, a name without a dot, or one ending in `_savedmodel` / `saved_model`."""
    name = os.path.basename(os.path.normpath(path)).lower()
    return os.path.isdir(path) or "." not in name or name.endswith(("_savedmodel", "saved_model"))


def detect(path, kind) -> bool:
    from bgmv2.pytorch_impl import file_kinds
    return kind == file_kinds.SAVED_MODEL


def read(path):
    return tf_formats.read_savedmodel(path)


def prepare(job) -> dict:
    return tf_formats.versions()


def write(spec, path, metadata, job) -> None:
    tf_formats.write_savedmodel(spec, path, metadata)


def load(path, knobs=None, device="cpu", runtime=None, precision=None, **options):
    return tf_formats.load_savedmodel(path, knobs, device, precision)


def info(path) -> dict:
    return {k: v for k, v in tf_formats.savedmodel_metadata(path).items() if k != "state_keys"}
