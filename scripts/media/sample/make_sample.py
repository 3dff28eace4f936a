"""Generate the bundled sample (src.jpg, bgr.jpg) that `bgmv2 demo` and the notebook matte.

    python -m bgmv2.scripts.media.sample.make_sample

A synthetic pair from the project's own generator (scripts/training/synthetic.py, seed 0, 360x640):
a subject with soft edges and hair-like strands over a photograph from scikit-image's bundled data,
and the background shot alone (slightly shifted and noisy, as a real second shot is). Deterministic;
no download. Writes JPEG at quality 90 (about 100 KB for both).
"""
from pathlib import Path

HERE = Path(__file__).parent
SIZE = (360, 640)  # height, width
SEED = 0


def main() -> None:
    from bgmv2.scripts.media.encode import write_image
    from bgmv2.scripts.media.synth import synthetic_pair
    pair = synthetic_pair(*SIZE, seed=SEED)
    for name in ("src", "bgr"):
        write_image(HERE / f"{name}.jpg", pair[name])
        print(HERE / f"{name}.jpg", (HERE / f"{name}.jpg").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
