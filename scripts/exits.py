"""How every `bgmv2` command ends: one exit-code table, SIGTERM handled like Ctrl-C, one line per error.

Exit codes (the same in every command):
  0    done
  1    error: the one-line message says what and what to do
  2    usage: a flag or value the command does not take
  3    partly done: --continue-on-error went past failures (listed), or a check failed its bar
       (bench --min-ratio)
  130  interrupted (Ctrl-C, SIGINT): finished outputs kept, unfinished ones removed
  143  terminated (SIGTERM: kill, timeout, a container stop): the same clean-up as Ctrl-C

`guard(run)` turns what escapes a command into those: an OSError (disk full, read-only folder, a file
where a folder should be) or any other unexpected exception becomes one `error:` line with
"run with BGMV2_DEBUG=1 for the traceback" (real bugs stay findable: BGMV2_DEBUG=1 re-raises).
"""
import errno
import os
import signal
import sys
import threading
from typing import Callable, Optional

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM
DEBUG_HINT = "run with BGMV2_DEBUG=1 for the traceback"
EPILOG = ("exit status: 0 done, 1 error, 2 usage, 3 partly done (--continue-on-error, --min-ratio), "
          "130 interrupted (Ctrl-C), 143 terminated (SIGTERM); " + "sizes are WIDTHxHEIGHT, e.g. 1280x720")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so every clean-up path for Ctrl-C runs for it too."""


_signal = {"received": None, "pid": None}


def on_sigterm(signum, frame) -> None:
    if _signal["pid"] not in (None, os.getpid()):  # a forked child (e.g. OpenVINO's telemetry sender): die as SIGTERM says
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _signal["received"] = signum
    raise Terminated()


def install_signal_handlers():
    """SIGTERM -> Terminated (a KeyboardInterrupt) on the main thread; Ctrl-C keeps Python's own.
    Returns the previous SIGTERM handler (for `restore_signal_handlers`), or None if none was set."""
    _signal["received"], _signal["pid"] = None, os.getpid()
    if threading.current_thread() is threading.main_thread():
        try:
            return signal.signal(signal.SIGTERM, on_sigterm)
        except (ValueError, OSError):  # not settable here (embedded interpreter)
            pass
    return None


def restore_signal_handlers(previous) -> None:
    """Put back the SIGTERM handler the caller had (main() called in-process, as tests do)."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def interrupted_status(error: Optional[BaseException] = None) -> int:
    if isinstance(error, Terminated) or _signal["received"] == signal.SIGTERM:
        return EXIT_TERMINATED
    return EXIT_INTERRUPTED


def interrupted_message(error: Optional[BaseException] = None) -> str:
    how = "terminated (SIGTERM)" if interrupted_status(error) == EXIT_TERMINATED else "interrupted"
    return f"\n{how}: finished outputs are kept, unfinished ones were removed (no partial files)"


ERRNO_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or choose another output folder",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another output folder",
    errno.EROFS: "the file system is read-only: choose another output folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another output folder",
    errno.EISDIR: "a folder stands where a file is needed: choose another name",
    errno.EEXIST: "a file stands where a folder is needed: choose another output folder",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EIO: "input/output error: the disk or the network share failed",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}


def os_error_text(error: OSError, what: str = "") -> str:
    """One line for an OSError: the path, what happened and the fix."""
    path = error.filename if error.filename is not None else what
    advice = ERRNO_ADVICE.get(error.errno, error.strerror or str(error))
    return f"{path}: {advice}" if path else advice


def guard(run: Callable[[], int]) -> int:
    """Run a command; what escapes it becomes an exit status and one line (see the module's table)."""
    debug = os.environ.get("BGMV2_DEBUG", "") not in ("", "0")
    try:
        return run()
    except KeyboardInterrupt as error:
        print(interrupted_message(error), file=sys.stderr)
        return interrupted_status(error)
    except SystemExit:
        raise
    except OSError as error:
        if debug:
            raise
        print(f"error: {os_error_text(error)} ({DEBUG_HINT})", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        if debug:
            raise
        print("error: out of memory: use smaller inputs (--resize), fewer threads or a smaller model "
              f"({DEBUG_HINT})", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen condition: one line, not 40
        if debug:
            raise
        text = " ".join(str(error).split())[:300] or "(no message)"
        print(f"error: unexpected {type(error).__name__}: {text} ({DEBUG_HINT}; please report it if the "
              "inputs were valid)", file=sys.stderr)
        return EXIT_ERROR
