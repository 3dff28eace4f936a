"""What each written file shows a user through the runtime's own API: output names in the order each
API lists them, and the ONNX dims. Measured on the files, for docs/deployment.md."""
import os
import subprocess
import sys
from typing import Dict, List

import numpy as np


def savedmodel(path: str) -> Dict[str, List[str]]:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    x = tf.zeros([1, 64, 96, 3])
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    cli = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", path,
                          "--tag_set", "serve", "--signature_def", "serving_default"], capture_output=True, text=True)
    return {
        "`saved_model_cli show --dir m_savedmodel --tag_set serve --signature_def serving_default`":
            [line.split("'")[1] for line in cli.stdout.splitlines() if line.strip().startswith("outputs['")],
        "the SignatureDef's `outputs` map as parsed (`saved_model.pb`, protobuf)":
            list(proto.meta_graphs[0].signature_def["serving_default"].outputs),
        "`loaded.signatures['serving_default'].structured_outputs`": list(signature.structured_outputs),
        "`loaded.signatures['serving_default'](src=..., bgr=...)` (a dict)": list(signature(src=x, bgr=x)),
        "`loaded.matte(src, bgr)` (a tuple)": [f"{len(loaded.matte(x, x))} tensors, contract order"],
    }


def tflite(path: str) -> Dict[str, List[str]]:
    from bgmv2.converters.tflite_format import schema
    fb = schema()
    with open(path, "rb") as f:
        model = fb.Model.GetRootAs(f.read(), 0)
    graph, signature = model.Subgraphs(0), model.SignatureDefs(0)
    found = {
        "the flatbuffer's subgraph outputs": [graph.Tensors(int(i)).Name().decode() for i in graph.OutputsAsNumpy()],
        "the flatbuffer's SignatureDef `serving_default`":
            [signature.Outputs(i).Name().decode() for i in range(signature.OutputsLength())],
    }
    zeros = np.zeros([1, 64, 96, 3], np.float32)
    interpreters = []
    try:
        from ai_edge_litert.interpreter import Interpreter
        interpreters.append(("LiteRT", Interpreter))
    except ImportError:
        pass
    try:
        import tensorflow as tf
        interpreters.append(("tf.lite", tf.lite.Interpreter))
    except ImportError:
        pass
    for name, cls in interpreters:
        interpreter = cls(model_path=path)
        found[f"{name} `get_output_details()`"] = [d["name"] for d in interpreter.get_output_details()]
        found[f"{name} `get_signature_list()`"] = list(interpreter.get_signature_list()["serving_default"]["outputs"])
        runner = interpreter.get_signature_runner("serving_default")
        found[f"{name} `get_signature_runner()(src=..., bgr=...)` (a dict)"] = list(runner(src=zeros, bgr=zeros))
    return found


def onnx_dims(path: str) -> Dict[str, List[str]]:
    import onnx
    model = onnx.load(path, load_external_data=False)
    return {v.name: [str(d.dim_param or d.dim_value) for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}
