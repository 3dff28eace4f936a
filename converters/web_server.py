"""A small HTTP server on 127.0.0.1 for the web page: files from mounted folders, sent with the headers
that make the page cross-origin isolated (COOP/COEP: onnxruntime-web's WASM threads need
SharedArrayBuffer), and optionally a store of raw tensors that the browser runtime exchanges with
the page (`/blob/TOKEN/NAME`: GET what Python put there, PUT what the page sends back; raw float32
bytes, no base64).

Only loopback: the server binds 127.0.0.1, never lists folders, and refuses paths outside its mounts.
"""
import http.server
import mimetypes
import os
import secrets
import threading
import urllib.parse
from pathlib import Path
from typing import Dict, Optional

TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".onnx": "application/octet-stream", ".json": "application/json", ".css": "text/css",
         ".html": "text/html; charset=utf-8", ".png": "image/png", ".jpg": "image/jpeg"}
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cross-Origin-Resource-Policy": "same-origin", "X-Content-Type-Options": "nosniff"}
MAX_BLOB = 1 << 31  # 2 GiB: far above a 4K frame's six outputs


class Site:
    """`Site(mounts).start()` serves `mounts` (URL prefix -> folder or file) on 127.0.0.1:`port` (0: any
    free port); `.url` is its address; `.blobs` the tensor store when `blobs=True`; `.close()` stops it."""

    def __init__(self, mounts: Dict[str, Path], port: int = 0, blobs: bool = False):
        self.mounts = sorted(((prefix, Path(path)) for prefix, path in mounts.items()), key=lambda m: -len(m[0]))
        self.blobs: Optional[Dict[str, bytes]] = {} if blobs else None
        self.token = secrets.token_hex(8)
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self.handler())
        self.server.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def blob_prefix(self) -> str:
        return f"/blob/{self.token}/"

    def mount(self, prefix: str, path: Path) -> None:
        """Serve `path` (a file or folder) under `prefix` from now on."""
        with self.lock:
            self.mounts = sorted([*self.mounts, (prefix, Path(path))], key=lambda m: -len(m[0]))

    def unmount(self, prefix: str) -> None:
        with self.lock:
            self.mounts = [m for m in self.mounts if m[0] != prefix]

    def start(self) -> "Site":
        self.thread = threading.Thread(target=self.server.serve_forever, name="bgmv2-web-site", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C (`bgmv2 web --serve`)."""
        self.server.serve_forever()

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def resolve(self, url_path: str) -> Optional[Path]:
        """The file a URL path names, or None (outside every mount, a folder without index.html)."""
        path = urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0])
        if "\x00" in path:
            return None
        for prefix, target in self.mounts:
            if target.is_file():
                if path == prefix:
                    return target
                continue
            if path.startswith(prefix) or path + "/" == prefix:
                rest = [p for p in path[len(prefix):].split("/") if p]
                if any(p in (".", "..") or "\\" in p for p in rest):
                    return None
                found = target.joinpath(*rest)
                if found.is_dir():
                    found = found / "index.html"
                return found if found.is_file() else None
        return None

    def handler(self):
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the page reports its own problems
                pass

            def headers_out(self, status: int, length: int, kind: str, tag: Optional[str] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(length))
                self.send_header("Cache-Control", "no-cache")  # revalidated by ETag: reloads reuse the browser's
                if tag:                                         # cache, and V8's compiled WASM with it
                    self.send_header("ETag", tag)
                for name, value in ISOLATION.items():
                    self.send_header(name, value)
                self.end_headers()

            def fail(self, status: int, text: str) -> None:
                body = text.encode()
                self.headers_out(status, len(body), "text/plain; charset=utf-8")
                self.wfile.write(body)

            def blob_name(self) -> Optional[str]:
                if site.blobs is not None and self.path.startswith(site.blob_prefix):
                    return self.path[len(site.blob_prefix):]
                return None

            def do_GET(self):
                self.send(body=True)

            def do_HEAD(self):
                self.send(body=False)

            def send(self, body: bool) -> None:
                name = self.blob_name()
                if name is not None:
                    with site.lock:
                        data = site.blobs.get(name)
                    if data is None:
                        return self.fail(404, "no such tensor")
                    self.headers_out(200, len(data), "application/octet-stream")
                    if body:
                        self.wfile.write(data)
                    return
                path = site.resolve(self.path)
                if path is None:
                    return self.fail(404, "not found")
                kind = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                stat = path.stat()
                tag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
                if self.headers.get("If-None-Match") == tag:
                    return self.headers_out(304, 0, kind, tag)
                size = stat.st_size
                self.headers_out(200, size, kind, tag)
                if body:
                    with open(path, "rb") as f:
                        while True:
                            chunk = f.read(1 << 20)
                            if not chunk:
                                break
                            self.wfile.write(chunk)

            def do_PUT(self):
                name = self.blob_name()
                if name is None:
                    return self.fail(405, "read-only")
                length = int(self.headers.get("Content-Length", "0"))
                if length < 0 or length > MAX_BLOB:
                    return self.fail(413, "too large")
                data = self.rfile.read(length)
                with site.lock:
                    site.blobs[name] = data
                self.headers_out(204, 0, "text/plain")

        return Handler


def serve_folder(folder: str, port: int = 0) -> Site:
    """A `Site` for one app folder (`bgmv2 web OUT --serve`), not started."""
    return Site({"/": Path(os.path.abspath(folder))}, port=port)
