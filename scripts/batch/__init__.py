"""`bgmv2 batch`: many pictures and videos matted on a Ray cluster (or local Ray), resumably.

One job per module; only `cluster` imports Ray, so the rest is testable (and importable) without it:

- `items`: the inputs from a manifest (JSON lines) or from folders, with each bad line or file named.
- `ledger`: what is done (JSON lines, appended and fsynced), so a rerun makes only what is missing or stale.
- `lock`: one batch per output folder (a lock file holding the PID and host; stale ones reclaimed).
- `work`: the per-item work a worker does (pictures, video segments as lossless 8-bit chunks) and the
  in-order join of a video's chunks into the same files `bgmv2 video` writes.
- `report`: progress lines, the summary table and `batch-summary.json`.
- `cluster`: Ray: connecting, one model per worker actor, scheduling, retries.
- `driver`: the command's run from start to exit status.
"""
