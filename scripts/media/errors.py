"""The one error type the apps turn into `error: <message>` and exit status 1 (no traceback)."""


class MediaError(Exception):
    """A problem with the user's inputs, outputs or options; the message says what and what to do."""


def warn(message: str) -> None:
    """A one-line warning on stderr that does not break a progress bar."""
    import sys
    try:
        from tqdm import tqdm
        tqdm.write(f"warning: {message}", file=sys.stderr)
    except ImportError:
        print(f"warning: {message}", file=sys.stderr)
