"""Realistic export bugs made the way users meet them: the project's ONNX file edited with the `onnx`
package, quantised with `onnxruntime.quantization.quantize_dynamic`, converted to fp16 with the
onnxconverter-common converter ONNX Runtime ships. Each edit takes a ModelProto (data loaded) and
changes it in place; `write_edited` saves the result.
"""
import numpy as np


def producers(graph):
    return {out: node for node in graph.node for out in node.output}


def initializer(graph, name):
    return next(t for t in graph.initializer if t.name == name)


def set_array(graph, name, array):
    from onnx import numpy_helper
    tensor = initializer(graph, name)
    tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array, dtype=numpy_helper.to_array(tensor).dtype),
                                            name))


def array(graph, name):
    from onnx import numpy_helper
    return numpy_helper.to_array(initializer(graph, name))


def convs(graph):
    return [node for node in graph.node if node.op_type == "Conv"]


def attribute(node, name):
    from onnx import helper
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def set_attribute(node, name, value):
    from onnx import helper
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


# -- the edits ---------------------------------------------------------------------------------------------
def swap_outputs(first, second):
    def edit(model):
        graph = model.graph
        rename = {first: second, second: first}
        for node in graph.node:  # a pure rename: the graph computes the same, its outputs carry other names
            node.output[:] = [rename.get(name, name) for name in node.output]
            node.input[:] = [rename.get(name, name) for name in node.input]
        for output in graph.output:
            output.name = rename.get(output.name, output.name)
    return edit


def first_layer_bgr(model):
    graph = model.graph
    conv = convs(graph)[0]
    w = array(graph, conv.input[1]).copy()
    w[:, 0:3], w[:, 3:6] = w[:, 2::-1].copy(), w[:, 5:2:-1].copy()
    set_array(graph, conv.input[1], w)


def imagenet_normalisation(model):
    """(x - mean) / std on src and bgr, inserted before everything that reads them."""
    from onnx import helper, numpy_helper
    graph = model.graph
    mean = numpy_helper.from_array(np.asarray((0.485, 0.456, 0.406), np.float32).reshape(1, 3, 1, 1), "imagenet_mean")
    std = numpy_helper.from_array(np.asarray((0.229, 0.224, 0.225), np.float32).reshape(1, 3, 1, 1), "imagenet_std")
    graph.initializer.extend([mean, std])
    added = []
    for name in ("src", "bgr"):
        for node in graph.node:
            node.input[:] = [f"{name}_normalised" if i == name else i for i in node.input]
        added += [helper.make_node("Sub", [name, "imagenet_mean"], [f"{name}_centred"]),
                  helper.make_node("Div", [f"{name}_centred", "imagenet_std"], [f"{name}_normalised"])]
    for node in reversed(added):
        graph.node.insert(0, node)


def tf_same_padding(model):
    """Strided convolutions with TensorFlow's SAME padding (auto_pad SAME_UPPER), as TF exporters write."""
    for conv in convs(model.graph):
        if max(attribute(conv, "strides") or [1]) > 1:
            for a in list(conv.attribute):
                if a.name == "pads":
                    conv.attribute.remove(a)
            set_attribute(conv, "auto_pad", "SAME_UPPER")


def resize_mode(mode=None, antialias=None, first_only=False):
    def edit(model):
        done = 0
        for node in model.graph.node:
            if node.op_type == "Resize" and attribute(node, "mode") == b"linear":
                if first_only and done >= 2:
                    break
                if mode:
                    set_attribute(node, "coordinate_transformation_mode", mode)
                if antialias is not None:
                    set_attribute(node, "antialias", antialias)
                done += 1
    return edit


def relu6_as_relu(model):
    graph = model.graph
    for node in graph.node:
        if node.op_type == "Clip" and len(node.input) == 3 and node.input[2]:
            try:
                high = float(array(graph, node.input[2]))
            except StopIteration:
                continue
            if high == 6.0:
                node.op_type = "Relu"
                del node.input[1:]


def fgr_clamp_removed(model):
    graph = model.graph
    made = producers(graph)
    node = made["fgr"]
    while node.op_type != "Clip":
        node = made[node.input[0]]
    for other in graph.node:
        other.input[:] = [node.input[0] if i == node.output[0] else i for i in other.input]


def residual_dropped(model):
    """The first residual Add of the backbone (two convolution branches) returns its branch alone."""
    graph = model.graph
    made = producers(graph)
    for node in graph.node:
        if node.op_type == "Add" and all(i in made and made[i].op_type in ("Conv", "Add") for i in node.input):
            branch = node.input[1]  # x + conv(x)
            for other in graph.node:
                other.input[:] = [branch if i == node.output[0] else i for i in other.input]
            return
    raise AssertionError("no residual Add found")


def kernels_flipped(model):
    graph = model.graph
    for conv in convs(graph):
        w = array(graph, conv.input[1])
        if w.shape[-1] > 1:
            set_array(graph, conv.input[1], w[..., ::-1, ::-1])


def weights_bf16(model):
    graph = model.graph
    for tensor in list(graph.initializer):
        if tensor.data_type == 1 and len(tensor.dims) >= 1:
            value = np.ascontiguousarray(array(graph, tensor.name), np.float32)
            bits = value.view(np.uint32)
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).view(np.float32)
            set_array(graph, tensor.name, rounded)


def batchnorm_epsilon(state, pairs, eps=1e-3, used=1e-5):
    """BatchNorm folded with epsilon `eps` (Keras' default) instead of the checkpoint's `used`: each
    folded convolution rescaled per output channel, its bias moved. `state`: the reference weights,
    `pairs`: BatchNorm name -> the convolution before it (`converters.onnx_format.conv_bn_pairs`)."""
    def edit(model):
        graph = model.graph
        by_conv = {conv: bn for bn, conv in pairs.items()}
        for conv in convs(graph):
            name = conv.input[1][len("model."):].rsplit(".weight", 1)[0]
            if name not in by_conv or len(conv.input) < 3:
                continue
            bn = by_conv[name]
            gamma, mean, var = (np.asarray(state[f"{bn}.{k}"], np.float64) for k in ("weight", "running_mean",
                                                                                       "running_var"))
            before, after = gamma / np.sqrt(var + used), gamma / np.sqrt(var + eps)
            w, b = array(graph, conv.input[1]), array(graph, conv.input[2])
            set_array(graph, conv.input[1], w * (after / before).reshape(-1, 1, 1, 1))
            set_array(graph, conv.input[2], b + mean * (before - after))
    return edit


def noise_on(name_part, strength=0.05, seed=0):
    def edit(model):
        graph = model.graph
        conv = next(c for c in convs(graph) if name_part in c.input[1])
        w = array(graph, conv.input[1])
        rng = np.random.default_rng(seed)
        set_array(graph, conv.input[1], w * (1 + strength * rng.standard_normal(w.shape)))
    return edit


def batch_from_first(model):
    """Every RoiAlign crops from batch item 1 (upstream's batch bug): its batch indices multiplied by 0."""
    from onnx import helper, numpy_helper
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.asarray(0, np.int64), "zero_index"))
    added = 0
    for position, node in enumerate(list(graph.node)):
        if node.op_type == "RoiAlign":
            zeroed = f"{node.input[2]}_zeroed_{added}"
            graph.node.insert(position + added, helper.make_node("Mul", [node.input[2], "zero_index"], [zeroed]))
            node.input[2] = zeroed
            added += 1
    assert added, "no RoiAlign"


# -- writing ---------------------------------------------------------------------------------------------
def write_edited(source, dest, edit):
    import onnx
    model = onnx.load(str(source))
    edit(model)
    onnx.save(model, str(dest))
    return str(dest)


def int8_dynamic(source, dest):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(source), str(dest), weight_type=QuantType.QInt8)
    return str(dest)


def fp16_keep_io(source, dest):
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(dest))
    return str(dest)
