"""A Ray cluster address checked before Ray is asked to join it."""
import socket
from urllib.parse import urlparse

from bgmv2.scripts.media.errors import MediaError


def check_reachable(address: str, timeout: float) -> None:
    """A quick TCP check of a `host:port` or `ray://host:port` address, so a wrong address is a clear
    message in seconds instead of Ray's long retries."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise MediaError(f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:10001 or auto")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, socket.timeout) else (error.strerror or str(error))
        raise MediaError(f"--address {address}: cannot reach {host}:{port} within {timeout:g} s ({reason}); "
                         "is the cluster up (`ray start --head` there) and the port open from here?") from None
