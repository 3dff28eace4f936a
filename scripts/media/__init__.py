"""Media for the matting apps: read and write images and video, run a model on frame pairs, composite.

One job per module, all free of argument parsing except `options`:

- `errors`: `MediaError`, the user-facing error every app prints as `error: ...`.
- `options`: the command-line arguments the apps share (model, knobs, outputs), with upstream's aliases.
- `runner`: the runner protocol and how a model file, zoo name or format becomes one.
- `decode`: images, image folders, video (PyAV) and background sources, as RGB uint8 frames.
- `encode`: video writers (PyAV), image files and image sequences, each written under a temporary
  name and renamed when complete.
- `outputs`: which files a run writes, the --force check, and committing or aborting them together.
- `composite`: colours, composite backgrounds and turning model outputs into 8-bit pictures.
- `align`: homographic alignment of a background shot to a frame (OpenCV features + RANSAC).
- `pipeline`: decode, inference and encode overlapped in threads with bounded queues, progress bar.
- `matting`: the stages around the model every app shares (inference, then rendering and writing).
- `app`: how every app starts and ends (allocator, OpenMP waiting, errors, Ctrl-C, exit status).
- `synth`: generated clips and test media.
- `preview`: the side-by-side preview picture.
- `webcam`: the webcam app's loop, with the camera, window and keys injectable (testable headless).

Nothing here imports torch, PyAV or OpenCV at import time of this package.
"""
