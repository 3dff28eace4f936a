"""One session cache of exported files for every test: per backbone, the parity matrix's files of the
reference weights (the shipped MobileNetV2; calibrated ResNets), each built once per session by
`parity_tests.matrix.Builder` in worker processes, in order of need (the parity conftest notes which
the collected cases need, so they start at once). Any test asks the `matrix` fixture (tests/conftest.py)
for a file by its matrix label: `matrix.side("mobilenetv2")[0].path("onnx-static")`.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "weights", "bgmv2_mobilenetv2_synthetic_fp16.safetensors")
WANTED = {}  # backbone -> matrix labels the collected CPU (and runnable CUDA) cases need


class Matrix:
    """Per backbone: the reference weights, their `Reference`, and a `Builder` of their matrix files."""

    def __init__(self, folder: str, knobs):
        self.folder, self.knobs = folder, knobs
        self.sides = {}

    def source(self, backbone: str) -> str:
        if backbone == "mobilenetv2":
            return SHIPPED
        from bgmv2.parity_tests.calibrated import write_calibrated
        return write_calibrated(backbone, self.folder)

    def side(self, backbone: str):
        if backbone not in self.sides:
            from bgmv2.parity_tests.candidates import Reference
            from bgmv2.parity_tests.matrix import Builder
            source = self.source(backbone)
            workers = int(os.environ.get("BGMV2_PARITY_WORKERS", "2"))
            if backbone == "resnet101":
                workers = min(workers, 1)  # two ResNet-101 exports at once need about 16 GB
            builder = Builder(source, os.path.join(self.folder, backbone), self.knobs, workers=workers)
            builder.submit(WANTED.get(backbone, ()))
            self.sides[backbone] = (builder, Reference(source))
        return self.sides[backbone]

    def close(self):
        for builder, _ in self.sides.values():
            builder.close()
