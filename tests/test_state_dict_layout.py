"""Our modules produce exactly the official checkpoints' keys, shapes and dtypes, in order."""
import pytest

from bgmv2.pytorch_impl import MattingBase, MattingRefine

MODELS = {"base": MattingBase, "refine": MattingRefine}


def reference_rows(path):
    return [tuple(line.rstrip("\n").split("\t")) for line in path.read_text().splitlines() if line.strip()]


def our_rows(model):
    return [(key, "x".join(str(d) for d in tensor.shape) or "scalar", str(tensor.dtype).replace("torch.", ""))
            for key, tensor in model.state_dict().items()]


@pytest.mark.parametrize("kind", ["base", "refine"])
@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
def test_state_dict_matches_official_layout(shared_reference, kind, backbone):
    expected = reference_rows(shared_reference / f"official_keys_{kind}_{backbone}.tsv")
    ours = our_rows(MODELS[kind](backbone))
    assert len(expected) > 300
    missing = sorted(set(expected) - set(ours))
    extra = sorted(set(ours) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    assert ours == expected  # same order too, so a state dict saved here diffs cleanly against official ones


def test_refiner_kernel_size_1_changes_only_refiner_shapes():
    three = MattingRefine("mobilenetv2", refine_kernel_size=3).state_dict()
    one = MattingRefine("mobilenetv2", refine_kernel_size=1).state_dict()
    assert list(three) == list(one)
    differing = {k for k in three if three[k].shape != one[k].shape}
    assert differing == {f"refiner.conv{i}.weight" for i in range(1, 5)}
    assert one["refiner.conv1.weight"].shape == (24, 42, 1, 1)
