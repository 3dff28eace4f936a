"""A Ray cluster address checked before Ray is asked to join it: its form, a TCP connection, then its head
(`gcs.prepare_join`: a Ray head? a token wanted, and ours right?), all within --connect-timeout."""
import socket
from typing import Optional, Tuple
from urllib.parse import urlparse

from bgmv2.scripts.media.errors import MediaError

FORMS = "HOST:PORT (e.g. 10.0.0.5:6379, the head's `ray start --head --port`), ray://HOST:10001 or auto"


def parse(address: str) -> Tuple[str, Optional[str], Optional[int]]:
    """(scheme, host, port) of `HOST:PORT` ("gcs"), `ray://HOST:PORT` ("ray") or `auto` ("auto", None, None)."""
    if address == "auto":
        return "auto", None, None
    if not address.strip():
        raise MediaError(f"--address {address!r} is empty: give {FORMS}, or leave --address out to start Ray here")
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if parsed.scheme not in ("gcs", "ray") or not host or not port or parsed.path not in ("", "/"):
        raise MediaError(f"--address {address}: expected {FORMS}")
    return parsed.scheme, host, port


def check_reachable(address: str, timeout: float) -> None:
    """A quick TCP check, so a wrong address is a clear message in seconds instead of Ray's long retries."""
    scheme, host, port = parse(address)
    if scheme == "auto":
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, socket.timeout) else (error.strerror or str(error))
        raise MediaError(f"--address {address}: cannot reach {host}:{port} within {timeout:g} s ({reason}); "
                         "is the cluster up (`ray start --head` there) and the port open from here?") from None


def check_join(address: str, timeout: float) -> bool:
    """All of the checks; whether the join must send our token (RAY_AUTH_MODE=token)."""
    from . import gcs
    check_reachable(address, timeout)
    scheme, host, port = parse(address)
    return scheme == "gcs" and gcs.prepare_join(f"{host}:{port}", timeout) is not None
