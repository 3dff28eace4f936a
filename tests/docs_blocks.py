"""The code blocks of README.md and docs/*.md, as tests/test_docs.py runs them.

A fenced block is run when its language is a shell (```bash, ```sh, ```shell: one script, stopped by the
first failing command; ```console: each `$ cmd` line is one command, and the lines after it up to the next
`$` line are what it must print, `...` matching any text in a line and a line of `...` any lines) or
```python (a script). Other languages (json, text, ...) are not run. The line before a block may mark it:

    <!-- docs-test: skip REASON -->     not run (network, cluster, ...; the reason is shown); a REASON
                                        starting with `cuda` runs where PyTorch sees a GPU
    <!-- docs-test: slow (WHY) -->      run only in the slow tier (-m slow)
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

SHELLS = ("bash", "sh", "shell", "console")
PYTHON = ("python", "py")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
COMMAND_WORDS = ("bgmv2 ", "python ", "python3 ", "pip ", "npm ", "apt-get ", "sudo ", "$ ")


@dataclass
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str = ""  # "", "slow ...", "skip ..."

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in SHELLS + PYTHON

    @property
    def skip(self) -> Optional[str]:
        return self.mark[len("skip"):].strip() if self.mark.startswith("skip") else None

    @property
    def slow(self) -> bool:
        return self.mark.startswith("slow")


def pages(root: Path) -> List[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [root / "README.md"] + sorted((root / "docs").glob("**/*.md"))


def blocks(root: Path, path: Path) -> List[Block]:
    """Every fenced block of a page, with its mark."""
    found, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[:3]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = MARK.match(before)
        found.append(Block(str(path.relative_to(root)), start + 1, lang.lower(), "\n".join(body) + "\n",
                           mark.group(1) if mark else ""))
    return found


def indented_commands(path: Path) -> List[Tuple[int, str]]:
    """Lines of indented (unfenced) code blocks that look like commands: (line, text)."""
    found, lines, fenced = [], path.read_text(encoding="utf-8").splitlines(), False
    for n, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or not line.startswith("    "):
            continue
        previous = lines[n - 1] if n else ""
        starts_block = not previous.strip() or previous.startswith("    ")
        if starts_block and line.strip().startswith(COMMAND_WORDS):
            found.append((n + 1, line.strip()))
    return found


def console_commands(text: str) -> List[Tuple[str, List[str]]]:
    """(command, the lines shown after it) for each `$ ` line of a console block; a command continues
    on the next line after a trailing backslash."""
    steps: List[Tuple[str, List[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command + "\n" + lines[i]
            steps.append((command, []))
        elif steps:
            steps[-1][1].append(line)
        i += 1
    return steps


def pattern(shown: List[str]) -> "re.Pattern[str]":
    """The regular expression of a command's shown output: `...` is any text within a line, and a line
    of `...` is any number of lines; trailing spaces and blank lines at the end do not count."""
    shown = [line.rstrip() for line in shown]
    while shown and not shown[-1]:
        shown.pop()
    parts = []
    for line in shown:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts))


def matches(shown: List[str], printed: str) -> bool:
    """Whether `printed` is what `shown` shows (see `pattern`)."""
    lines = [line.rstrip() for line in printed.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    text = "".join(line + "\n" for line in lines)
    return pattern(shown).fullmatch(text) is not None
