"""The short public API (`bgmv2.load_model`, `matte`, `convert`, `load`, `check`): the front doors of
the parts beneath, so a user needs one import."""


def load_model(name_or_path, **options):
    """A PyTorch MattingRefine / MattingBase from a zoo name or a weights file (`pytorch_impl.load_model`)."""
    from bgmv2.pytorch_impl import load_model as load
    return load(name_or_path, **options)


def matte(model, src, bgr):
    """Run a PyTorch model on pictures of any size (`pytorch_impl.matte`)."""
    from bgmv2.pytorch_impl import matte as run
    return run(model, src, bgr)


def convert(source, dest, to=None, **options):
    """Convert a model file to another format, checked on a probe before it is kept (`converters.convert`)."""
    from bgmv2.converters import convert as run
    return run(source, dest, to, **options)


def load(path, **options):
    """A runner for any model file: `runner(src, bgr)` -> the six named outputs (`converters.load`)."""
    from bgmv2.converters import load as run
    return run(path, **options)
