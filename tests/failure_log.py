"""A pytest plugin that prints each failure's reason the moment it happens (and appends it to
$BGMV2_FAILURE_LOG), so a run cut short on a borrowed GPU still says what broke.

    python -m pytest -p tests.failure_log ...
"""
import os


def first_lines(report, count: int = 25) -> str:
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    tail = lines[-count:]  # the assertion and its message are at the end of a --tb=short trace
    return "\n".join(tail)


def pytest_runtest_logreport(report):
    if not report.failed:
        return
    text = f"FAILED {report.nodeid} ({report.when}, {report.duration:.1f} s)\n{first_lines(report)}\n"
    reporter = getattr(pytest_runtest_logreport, "terminal", None)
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(text)
    path = os.environ.get("BGMV2_FAILURE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")


def pytest_configure(config):
    pytest_runtest_logreport.terminal = config.pluginmanager.get_plugin("terminalreporter")
