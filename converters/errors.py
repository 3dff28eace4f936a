"""The one error converters raise: a message that names the problem and the fix."""


class ConversionError(ValueError):
    """A file that cannot be detected, loaded, converted or validated as asked; the message says why
    and what to do. Raised instead of the underlying framework's exception."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """`Type: first line` of an exception, for messages (never a whole framework traceback)."""
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    if len(line) > limit:
        line = line[:limit] + "..."
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


class OptionError(ConversionError):
    """A value of one option (`device`, `runtime`, `precision`) that cannot be used: `option value rest`,
    where `rest` names the option again as `{option}`. Commands name their own flag instead:
    `as_flag("backend")` -> `--backend fast ... leave --backend out`."""

    def __init__(self, option: str, value, rest: str, before: str = ""):
        self.option, self.value, self.rest, self.before = option, value, rest, before
        super().__init__(f"{before}{option} {value} " + rest.replace("{option}", option))

    def as_flag(self, flag: str) -> str:
        return f"{self.before}--{flag} {self.value} " + self.rest.replace("{option}", f"--{flag}")
