"""Which tests run in which tier, in one place (applied by tests/conftest.py at collection).

- default (`python -m pytest -q`): everything not marked slow; at most 8 minutes on 2 cores is the aim.
- smoke (`python -m pytest -q -m smoke`): SMOKE below, about 2 minutes: the layers, the one runner, the
  apps on the sample, convert and parity on small files, the toy format, packaging, the docs' structure.
- slow (`-m slow`): larger sizes and backbones, and the cases in SLOW: each is a second path to a
  behaviour the default tier already covers (named beside it), kept for the full run.
"""
from typing import Dict, Tuple

# node id prefix -> where the default tier covers the same behaviour
SLOW: Dict[str, str] = {
    "tests/test_convert.py::test_tensorflow_path_state_dict_keras_savedmodel_onnx_and_back":
        "Keras and SavedModel round trips: test_convert's other cases, test_tf_weights; tf2onnx: the matrix",
    "tests/test_convert.py::test_state_dict_to_format_and_back[onnx]": "the ONNX export: tests/test_onnx_export.py",
    "tests/test_convert.py::test_state_dict_to_format_and_back[pt2]": "the torch.export file: tests/test_pt2_export.py",
    "tests/test_runtime.py::test_tensorrt_variant_keeps_every_topk_constant_and_within_the_limit":
        "the tensorrt variant: tests/test_onnx_export.py::test_other_variants_take_any_frame_size_without_float64",
    "tests/parity/test_matrix.py::test_parity[resnet50-": "ResNet-50 weights through every format: test_tf_parity, "
                                                          "test_torchscript (resnets), test_tf_weights",
    "tests/parity/test_matrix.py::test_parity[mobilenetv2-onnx-static-fp16-": "fp16 files: the matrix's torchscript-fp16 "
                                                                            "and eager-fp16 rows, test_onnx_export's fp16",
    "tests/parity/test_matrix.py::test_parity[mobilenetv2-onnx-nonzero-": "the nonzero variant: test_onnx_export's "
                                                                          "variants (each matrix file is an export)",
    "tests/parity/test_matrix.py::test_parity[mobilenetv2-onnx-tensorrt-": "the tensorrt variant: test_onnx_export's "
                                                                           "variants",
    "tests/test_tf_parity.py::test_base_matches_pytorch[resnet101]": "ResNet-101: its weights round trip "
                                                                     "(test_tf_weights), ResNet-50 and MobileNetV2 here",
    "tests/test_tf_parity.py::test_refine_matches_pytorch[resnet101-": "the same refiner with ResNet-50 and MobileNetV2",
    "tests/test_tf_weights.py::test_round_trip_is_exact_and_official[resnet101-": "the same weight map, ResNet-50",
}

# node id prefixes of the smoke tier
SMOKE: Tuple[str, ...] = (
    "tests/test_layering.py",
    "tests/test_knobs.py",
    "tests/test_inputs.py",
    "tests/test_detect.py",
    "tests/test_cli.py",
    "tests/test_apps_demo.py",
    "tests/test_apps_images.py",
    "tests/test_runtime.py",
    "tests/test_format_registry.py",
    "tests/test_packaging.py",
    "tests/test_state_dict_layout.py",
    "tests/test_pt2_safety.py",
    "tests/test_checkpoint_loading.py",
    "tests/test_zoo.py",
    "tests/test_batch.py",
    "tests/test_fast.py::test_backend_fast_from_the_command_line",
    "tests/parity/test_command.py::test_passes_on_good_candidates_with_reports",
    "tests/parity/test_command.py::test_fails_on_a_perturbed_weight",
    "tests/test_docs.py::test_every_command_is_in_a_block_that_runs",
    "tests/test_docs.py::test_links_between_pages_resolve",
    "tests/test_docs.py::test_the_readme_links_every_docs_page",
    "tests/test_docs.py::test_ci_runs_the_readme_test_command",
)


def apply(items, pytest) -> None:
    """Mark the collected items: slow for SLOW's prefixes (unless already), smoke for SMOKE's."""
    for item in items:
        nodeid = item.nodeid
        if any(nodeid.startswith(prefix) for prefix in SLOW):
            item.add_marker(pytest.mark.slow)
        if any(nodeid.startswith(prefix) for prefix in SMOKE) and "slow" not in item.keywords:
            item.add_marker(pytest.mark.smoke)
