"""A Ray cluster's head asked directly (one gRPC call to its GCS) before joining it and while a batch runs.

Ray 2.59 and later turn token authentication on in `ray start --head` (the head's token in
~/.ray/auth_token), but `ray.init(address=...)` sends a token only when RAY_AUTH_MODE=token is set
where it runs; without it Ray retries for 20 s and says only that it could not connect. A port that
is not a Ray head (a web server) leaves `ray.init` waiting for minutes. So the batch first asks the
head for its cluster id, within --connect-timeout, and learns whether it is a Ray head, whether it
wants a token, and whether ours is the right one; a token is then used for the join. While the batch
runs, the same question tells a head that is gone (ConnectionLost) from a worker that died.

The token is found as Ray finds it: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else
~/.ray/auth_token. The call needs grpc (a Ray dependency), not Ray itself.
"""
import os
from pathlib import Path
from typing import Optional, Tuple

from bgmv2.scripts.media.errors import MediaError

METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"  # its request is an empty message
OK, NO_TOKEN, NOT_RAY, SILENT = "ok", "unauthenticated", "not ray", "silent"


class ClusterLost(MediaError):
    """The head stopped answering while the batch ran."""


def find_token() -> Tuple[Optional[str], str]:
    """(token, where it came from), or (None, where it was looked for)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return (text or None), str(path)


def ask(address: str, timeout: float, token: Optional[str] = None) -> Tuple[str, str]:
    """(OK | NO_TOKEN | NOT_RAY | SILENT, details) for the GCS at HOST:PORT."""
    import grpc
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda _: b"", response_deserializer=lambda b: b)
        try:
            call(None, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            code, details = error.code(), (error.details() or "").split("\n")[0]
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return NO_TOKEN, details
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return SILENT, f"no answer within {timeout:g} s"
            return NOT_RAY, details or code.name
    return OK, ""


def prepare_join(address: str, timeout: float) -> Optional[str]:
    """Check that HOST:PORT is a Ray head this machine may join; the token to join with (None: none needed).
    Each way it can fail is one MediaError saying what to do."""
    status, details = ask(address, timeout)
    if status == OK:
        return None
    if status == SILENT:
        raise MediaError(f"--address {address}: something listens there but did not answer as a Ray cluster ({details}); "
                         "give the port the head was started with (`ray start --head --port PORT`, 6379 by default; "
                         "not the dashboard's 8265), or raise --connect-timeout on a slow network")
    if status == NOT_RAY:
        said = f": {details}" if len(details) <= 80 and "failed to connect" not in details else ""
        raise MediaError(f"--address {address} answers, but not as a Ray cluster (not Ray's gRPC{said}; a web server?); "
                         "give the port the head was started with (`ray start --head --port PORT`, 6379 by default; "
                         "for the Ray client's port use ray://HOST:10001)")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise MediaError(f"--address {address}: the cluster uses token authentication, but RAY_AUTH_MODE=disabled is set "
                         "here; unset it (the head's token is then used: see docs/batch.md)")
    token, where = find_token()
    if token is None:
        raise MediaError(f"--address {address}: the cluster uses token authentication (Ray's default for `ray start` "
                         f"since 2.59) and no token was found here ({where}); copy the head's ~/.ray/auth_token to "
                         "this machine, or set RAY_AUTH_TOKEN (see docs/batch.md)")
    status, details = ask(address, timeout, token)
    if status == NO_TOKEN:
        raise MediaError(f"--address {address}: the cluster refused the token from {where} ({details}); use the head's "
                         "token (its ~/.ray/auth_token, or `ray get-auth-token` there)")
    if status != OK:
        raise MediaError(f"--address {address}: the cluster stopped answering ({details})")
    return token


def alive(address: str, timeout: float) -> bool:
    """Whether the head answers at all (a refusal of our token is an answer)."""
    try:
        return ask(address, timeout)[0] in (OK, NO_TOKEN)
    except Exception:  # noqa: BLE001 - grpc trouble of any kind: not an answer
        return False
