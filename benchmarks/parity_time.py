"""How long `bgmv2 parity` takes for one file, quiet and beside a CPU-heavy neighbour.

    python benchmarks/parity_time.py --candidate m.onnx                 # alone, then beside a neighbour
    python benchmarks/parity_time.py --candidate m.onnx --runs 3 --cores 0,1

Each run is the whole command (`bgmv2 parity --reference SHIPPED --candidate FILE`, defaults:
built-in probes, 3 timed repeats), started fresh, so imports and loading count. The first run fills
the parity cache (`$BGMV2_HOME/parity`, see `converters/reference_cache.py`) and is reported
apart; the others are what a user sees from then on. "beside a neighbour": a second process keeping
two threads busy with float32 matrix products the whole time, as a training or export job would.
`--cores` pins both (Linux `taskset`) to those cores, so a bigger machine measures as a small one.
The load average is read before and after every run, and the CPU time the command used (user +
system): on an otherwise idle machine with one thread per runtime, about its wall time.
"""
import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / "bgmv2_mobilenetv2_synthetic_fp16.safetensors"
NEIGHBOUR = ("import numpy as np, threading\n"
             "def spin():\n"
             "    a = np.random.rand(512, 512).astype(np.float32)\n"
             "    while True:\n"
             "        a = (a @ a) / 512\n"
             "threads = [threading.Thread(target=spin, daemon=True) for _ in range(2)]\n"
             "[t.start() for t in threads]\n"
             "[t.join() for t in threads]\n")


def pinned(command, cores):
    return ["taskset", "-c", cores, *command] if cores else command


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def one_run(command, cores) -> dict:
    before = os.getloadavg()[0]
    started, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(pinned(command, cores), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if done.returncode not in (0, 1):
        raise SystemExit(f"the parity command failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {"seconds": seconds, "cpu": cpu, "load_before": before, "load_after": os.getloadavg()[0]}


def measure(command, runs, cores, neighbour: bool) -> list:
    other = None
    if neighbour:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        other = subprocess.Popen(pinned([sys.executable, "-c", NEIGHBOUR], cores), env=env)
        time.sleep(5)  # let it take the cores
    try:
        return [one_run(command, cores) for _ in range(runs)]
    finally:
        if other is not None:
            other.kill()
            other.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", required=True, help="the model file to check")
    parser.add_argument("--reference", default=str(SHIPPED), help="the reference (default: the shipped model)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per condition (default 3)")
    parser.add_argument("--cores", help="pin everything to these cores (taskset list, e.g. 0,1)")
    parser.add_argument("--quiet-only", action="store_true", help="skip the run beside a neighbour")
    args = parser.parse_args(argv)
    bgmv2 = str(Path(sys.executable).with_name("bgmv2"))
    command = [bgmv2 if os.path.exists(bgmv2) else "bgmv2", "parity", "--reference", args.reference, "--candidate",
               args.candidate, "--quiet", "--out", os.path.join(os.environ.get("TMPDIR", "/tmp"), "parity-time")]
    print("command: " + " ".join(shlex.quote(c) for c in command) + (f" (pinned to cores {args.cores})" if args.cores
                                                                       else ""))
    first = one_run(command, args.cores)
    print(f"first run (fills the cache): {first['seconds']:.1f} s ({first['cpu']:.1f} s of CPU), load average "
          f"{first['load_before']:.1f} -> {first['load_after']:.1f}")
    for label, neighbour in (("without a neighbour", False), ("beside a CPU-heavy neighbour (2 threads)", True)):
        if neighbour and args.quiet_only:
            continue
        found = measure(command, args.runs, args.cores, neighbour)
        times = ", ".join(f"{r['seconds']:.1f}" for r in found)
        loads = ", ".join(f"{r['load_before']:.1f}->{r['load_after']:.1f}" for r in found)
        cpu = statistics.median(r["cpu"] for r in found)
        print(f"{label}: median {statistics.median(r['seconds'] for r in found):.1f} s per file, {cpu:.1f} s of CPU "
              f"(runs: {times} s; load average before->after: {loads}; {os.cpu_count()} cores visible)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
