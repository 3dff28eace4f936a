"""The short public API (`bgmv2.load_model`, `matte`, `convert`, `load`, `check`): the front doors of
the parts beneath, so a user needs one import."""


def load_model(name_or_path=None, **options):
    """A PyTorch MattingRefine / MattingBase from a zoo name, a weights file of any format that holds
    the weights (state dicts, TorchScript, ONNX from PyTorch, Keras, ...), or (None) the shipped model;
    `options` as `pytorch_impl.load_model` (kind, backbone, device, dtype, knobs)."""
    from bgmv2.converters import read
    from bgmv2.converters.resolve import resolve_model
    from bgmv2.converters.torch_formats import torch_state
    from bgmv2.pytorch_impl import load_model as load
    spec = read(resolve_model(name_or_path))
    knobs = spec.knob_values() if spec.kind == "refine" and options.get("kind") != "base" else {}
    return load(torch_state(spec.state), **{**knobs, **options})


def matte(model, src, bgr):
    """A PyTorch model on pictures of any size, (3, H, W) or (B, 3, H, W), float in [0, 1] or uint8
    (`pytorch_impl.matte`): its outputs, as numpy arrays for numpy inputs, else as torch tensors."""
    import numpy as np
    import torch
    from bgmv2.pytorch_impl import matte as run
    if isinstance(src, np.ndarray) and isinstance(bgr, np.ndarray):
        outputs = run(model, torch.from_numpy(np.ascontiguousarray(src)), torch.from_numpy(np.ascontiguousarray(bgr)))
        return tuple(o.float().cpu().numpy() for o in outputs)
    return run(model, src, bgr)


def convert(source, dest, to=None, **options):
    """Convert a model file to another format, checked on a probe before it is kept (`converters.convert`)."""
    from bgmv2.converters import convert as run
    return run(source, dest, to, **options)


def load(path, **options):
    """A runner for any model file: `runner(src, bgr)` -> the six named outputs (`converters.load`)."""
    from bgmv2.converters import load as run
    return run(path, **options)


def check(candidate, reference, *, device: str = "cpu", runtime=None, precision=None, knobs=None, probes=None):
    """Whether `candidate` (any model file) gives `reference`'s alpha by the one acceptance rule, as
    `bgmv2 parity` checks it (`parity_tests.engine.run_parity`): the report, with `.ok` and one case.
    `runtime` / `precision`: run the candidate so (e.g. runtime="openvino", precision="bf16")."""
    from bgmv2.converters.probes import default_probes
    from bgmv2.parity_tests.candidates import resolve_path
    from bgmv2.parity_tests.engine import CandidateRequest, run_parity
    run_as = "file" if runtime is None and precision is None else "-".join(
        filter(None, [runtime or "torch", precision]))
    request = CandidateRequest(resolve_path(str(candidate)), run_as)
    return run_parity(resolve_path(str(reference)), [request], probes or default_probes(), dict(knobs or {}), device,
                      repeat=0)
