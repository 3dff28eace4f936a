"""Every command in README.md and docs/*.md runs, and prints what the page shows (tests/docs_blocks.py says
which blocks run and how they are marked).

Each page runs in a scratch folder of its own, its blocks in page order (a block first runs the blocks
before it that have not run). The README's folder holds only what a checkout holds (CHECKOUT), so its
examples must work when followed in order; the pages under docs/ also get the one fixture set (FIXTURES):
short names for a photo, its background, a folder of photos, a short clip and a model file. Commands find
`bgmv2` and `python` of the interpreter running the tests, keep the zoo's cache and the fast backend's
choices in the scratch folder (BGMV2_HOME), and print unbuffered, stdout and stderr together.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from docs_blocks import Block, blocks, console_commands, indented_commands, matches, pages, SHELLS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "weights/bgmv2_mobilenetv2_synthetic_fp16.safetensors"
# What a checkout holds that the docs use (linked, read only).
CHECKOUT = [SHIPPED, "scripts/media/sample/src.jpg", "scripts/media/sample/bgr.jpg", "scripts/inference_images.py",
            "scripts/inference_video.py", "hubconf.py", "pyproject.toml"]
# The fixture set of docs/ pages: name -> what it is (made once per session by `make_fixtures`).
FIXTURES = {
    "photo.jpg": "the bundled sample picture",
    "empty_room.jpg": "its background shot",
    "photos/a.jpg": "a folder of photos (two copies of the sample)",
    "photos/b.jpg": "",
    "talk.mp4": "an 8-frame 640x360 clip over the same background (`bgmv2 demo --clip`)",
    "model.pth": "the shipped model as a float32 state dict",
}
TIMEOUT = 900  # seconds for one block


def all_blocks():
    return [block for page in pages(ROOT) for block in blocks(ROOT, page)]


def params():
    """One test per block that runs; `skip cuda` blocks run where PyTorch sees a GPU."""
    import torch
    for block in all_blocks():
        if not block.runs:
            continue
        marks = [pytest.mark.slow] if block.slow else []
        if block.skip is not None and block.skip.startswith("cuda"):
            marks += [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                           reason=f"{block.id}: {block.skip}")]
        elif block.skip is not None:
            marks.append(pytest.mark.skip(reason=f"{block.id}: {block.skip}"))
        yield pytest.param(block, id=block.id, marks=marks)


def make_fixtures(folder: Path) -> None:
    from bgmv2.pytorch_impl import load_model
    from bgmv2.scripts.cmd_demo import write_clip
    import torch
    sample = ROOT / "scripts" / "media" / "sample"
    (folder / "photos").mkdir(parents=True)
    for name in ("photo.jpg", "photos/a.jpg", "photos/b.jpg"):
        shutil.copy(sample / "src.jpg", folder / name)
    shutil.copy(sample / "bgr.jpg", folder / "empty_room.jpg")
    write_clip(folder / "talk.mp4")
    torch.save(load_model(str(ROOT / SHIPPED), dtype=torch.float32).state_dict(), folder / "model.pth")


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


class Pages:
    """The scratch folder of each page and what ran in it: block line -> None (passed) or the failure."""

    def __init__(self, root: Path):
        self.root = root
        self.fixtures: Optional[Path] = None
        self.ran: Dict[str, Dict[int, Optional[str]]] = {}

    def folder(self, page: str) -> Path:
        folder = self.root / page.replace("/", "_").replace(".md", "")
        if page not in self.ran:
            self.ran[page] = {}
            folder.mkdir()
            for name in CHECKOUT:
                link(ROOT / name, folder / name)
            if page != "README.md":
                if self.fixtures is None:
                    self.fixtures = self.root / ".fixtures"
                    make_fixtures(self.fixtures)
                for name in FIXTURES:
                    link(self.fixtures / name, folder / name)
        return folder

    def run(self, block: Block) -> None:
        """Run the page's earlier blocks that have not run (skipped and slow ones excepted), then `block`."""
        folder = self.folder(block.page)
        done = self.ran[block.page]
        for earlier in blocks(ROOT, ROOT / block.page):
            if earlier.line >= block.line:
                break
            if not earlier.runs or earlier.skip is not None or earlier.slow:  # (cuda blocks run as their own items)
                continue
            if earlier.line in done and done[earlier.line] is not None:
                pytest.skip(f"needs {earlier.id}, which failed")
            if earlier.line not in done:
                done[earlier.line] = failure(earlier, folder)
                if done[earlier.line] is not None:
                    pytest.fail(f"{earlier.id} (run before {block.id}) failed:\n{done[earlier.line]}", pytrace=False)
        done[block.line] = failure(block, folder)
        if done[block.line] is not None:
            pytest.fail(done[block.line], pytrace=False)


def environment(folder: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["BGMV2_HOME"] = str(folder / ".bgmv2-home")
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "100"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the apps set it: spinning threads stall on shared cores
    env.pop("BGMV2_DEBUG", None)
    return env


def execute(argv, folder: Path):
    return subprocess.run(argv, cwd=folder, env=environment(folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def failure(block: Block, folder: Path) -> Optional[str]:
    """None when the block runs and prints what it shows; else what went wrong."""
    scratch = folder / ".docs-test"
    scratch.mkdir(exist_ok=True)
    if block.lang == "console":
        for command, shown in console_commands(block.text):
            result = execute(["bash", "-o", "pipefail", "-c", command], folder)
            if result.returncode != 0:
                return f"{block.id}: `{command}` exited with {result.returncode}:\n{tail(result.stdout)}"
            if shown and not matches(shown, result.stdout):
                return (f"{block.id}: `{command}` printed something else.\n--- the page shows:\n" + "\n".join(shown)
                        + f"\n--- it printed:\n{result.stdout.rstrip()}")
        return None
    if block.lang in SHELLS:
        script = scratch / f"block-{block.line}.sh"
        script.write_text("set -eo pipefail\ntrap 'echo \"docs-test: failed: $BASH_COMMAND\"' ERR\n" + block.text)
        result = execute(["bash", str(script)], folder)
    else:
        script = scratch / f"block-{block.line}.py"
        script.write_text(block.text)
        result = execute([sys.executable, str(script)], folder)
    if result.returncode != 0:
        return f"{block.id} exited with {result.returncode}:\n{tail(result.stdout)}"
    return None


@pytest.fixture(scope="session")
def docs_pages(tmp_path_factory) -> Pages:
    return Pages(tmp_path_factory.mktemp("docs"))


@pytest.mark.parametrize("block", list(params()))
def test_docs_block(block: Block, docs_pages: Pages):
    docs_pages.run(block)


def test_ci_runs_the_readme_test_command():
    """.ci/run runs the first README line that starts with `python -m pytest`: it must be the default tier."""
    first = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("python -m pytest"))
    assert first == "python -m pytest -q"


def test_every_command_is_in_a_block_that_runs():
    """Commands shown without a language, or in indented blocks, would escape this test: say so."""
    problems = []
    for page in pages(ROOT):
        for block in blocks(ROOT, page):
            if block.lang in ("", "text") and any(line.startswith("$ ") for line in block.text.splitlines()):
                problems.append(f"{block.id}: a block with `$ ` lines: mark it ```console")
            if block.mark and not (block.slow or (block.skip or "").strip()):
                problems.append(f"{block.id}: mark `{block.mark}`: write `skip REASON` or `slow (WHY)`")
            if block.mark and not block.runs:
                problems.append(f"{block.id}: a mark on a block that does not run ({block.lang or 'no language'})")
        for line, text in indented_commands(page):
            problems.append(f"{page.relative_to(ROOT)}:{line}: `{text}` in an indented block: put it in ```bash")
    assert not problems, "\n".join(problems)


def test_links_between_pages_resolve():
    """Every relative link in README.md and docs/ names a file that exists (pages other branches are writing
    are listed in PENDING until they are merged)."""
    import re
    pending = set()
    missing = []
    for page in pages(ROOT):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (page.parent / target).resolve()
            if not path.exists() and str(path.relative_to(ROOT)) not in pending:
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def test_the_readme_links_every_docs_page():
    """The README's Documentation section has a line for each page under docs/."""
    readme = (ROOT / "README.md").read_text()
    unlisted = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("**/*.md"))
                if f"]({p.relative_to(ROOT)})" not in readme]
    assert not unlisted, f"add a line to README.md's Documentation section for: {unlisted}"
