"""The one error type the apps turn into `error: <message>` and exit status 1 (no traceback)."""


class MediaError(Exception):
    """A problem with the user's inputs, outputs or options; the message says what and what to do."""


class DiskError(MediaError):
    """Writing failed in a way every later output would too (disk full, read-only, no permission):
    --continue-on-error stops on it rather than failing each remaining item the same way."""


def disk_error(error: OSError, path) -> MediaError:
    """An OSError met while writing `path`, as a one-line error with the fix."""
    import errno
    from bgmv2.scripts.exits import ERRNO_ADVICE
    advice = ERRNO_ADVICE.get(error.errno, error.strerror or str(error))
    fatal = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
    return (DiskError if fatal else MediaError)(f"{path}: cannot write: {advice}")


def warn(message: str) -> None:
    """A one-line warning on stderr that does not break a progress bar."""
    import sys
    try:
        from tqdm import tqdm
        tqdm.write(f"warning: {message}", file=sys.stderr)
    except ImportError:
        print(f"warning: {message}", file=sys.stderr)
