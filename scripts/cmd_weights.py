"""`bgmv2 weights list | info NAME | fetch NAME | verify PATH | forget NAME`: the model zoo from the shell."""
import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every model the zoo knows")
    info = actions.add_parser("info", help="one model's details")
    info.add_argument("name")
    fetch = actions.add_parser("fetch", help="download (resuming) or copy a model, verified by sha256")
    fetch.add_argument("name")
    fetch.add_argument("--from", dest="source", help="a local file or folder, or a mirror URL (offline use)")
    fetch.add_argument("--dir", help="destination folder (default: the cache, $BGMV2_HOME or ~/.cache/bgmv2)")
    verify = actions.add_parser("verify", help="check a file's sha256 against the zoo")
    verify.add_argument("path")
    verify.add_argument("--name", help="zoo name, when the file was renamed")
    forget = actions.add_parser("forget", help="drop the sha256 recorded on a model's first fetch (the next fetch "
                                               "checks the file it gets and records its hash again)")
    forget.add_argument("name")


def show_list(registry) -> None:
    print(f"{'name':32} {'origin':12} {'backbone':12} {'format':12} {'precision':9} sha256")
    for m in registry.models:
        sha = registry.expected_sha256(m)
        print(f"{m.name:32} {m.origin:12} {m.backbone:12} {m.format:12} {m.precision:9} "
              f"{sha[:16] + '...' if sha else 'unknown'}{'  (shipped)' if m.shipped else ''}"
              f"{f'  (superseded by {m.superseded_by})' if m.superseded_by else ''}")


def show_info(registry, name: str) -> None:
    m = registry.get(name)
    preset = registry.presets.get(m.preset or "", {})
    rows = [("name", m.name), ("origin", m.origin), ("description", m.description), ("model", f"{m.kind} / {m.backbone}"),
            ("format", f"{m.format}, {m.precision}"), ("file", m.file), ("size", m.size),
            ("sha256", sha256_text(registry, m)),
            ("shipped", m.shipped), ("superseded by", m.superseded_by), ("urls", ", ".join(m.urls) or "-"),
            ("preset", f"{m.preset}: {preset}" if preset else "-"), ("metrics", m.metrics or "-")]
    for key, value in rows:
        if value not in ("", None):
            print(f"{key + ':':13} {value}")


def sha256_text(registry, m) -> str:
    from bgmv2.weights.registry import recorded_hashes
    if m.sha256:
        return f"{m.sha256} (published in the registry)"
    record = recorded_hashes().get(m.file)
    if record is None:
        return "unknown (recorded on the first fetch whose file loads strictly as this model)"
    how = record.get("checked") or "not checked: recorded by an older bgmv2; `bgmv2 weights forget` drops it"
    return f"{record['sha256']} (recorded from {record['source']}, {record['recorded']}; {how})"


def run(args: argparse.Namespace) -> int:
    from bgmv2.weights import ZooError, fetch, forget, load_registry, verify
    registry = load_registry()
    try:
        if args.action == "list":
            show_list(registry)
        elif args.action == "info":
            show_info(registry, args.name)
        elif args.action == "fetch":
            from bgmv2.weights.fetch import print_progress
            from bgmv2.converters.identify import problem
            path = fetch(args.name, args.source, Path(args.dir) if args.dir else None, registry, print_progress,
                         identify_file=problem)
            print(path)
        elif args.action == "forget":
            record = forget(args.name, registry)
            if record is None:
                print(f"{args.name}: no sha256 recorded; nothing to forget")
            else:
                print(f"{args.name}: forgot sha256 {record['sha256']} (recorded from {record['source']}, "
                      f"{record['recorded']}); the next fetch checks the file it gets and records its hash again")
        else:
            if not Path(args.path).is_file():
                print(f"error: {args.path}: no such file", file=sys.stderr)
                return 1
            verdict = verify(Path(args.path), args.name, registry)
            print(f"{args.path}: {verdict}")
            return 0 if verdict != "mismatch" else 1
    except ZooError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    return 0
