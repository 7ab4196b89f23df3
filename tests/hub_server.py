"""A local Hugging Face Hub for tests: olah serves reads, a small front here takes writes.

`olah` (PyPI, MIT) is a real Hub mirror server; offline it serves model repos kept as git
repositories under its `mirrors-path` (`<mirrors>/models/<org>/<name>`), including revisions
and tags, but it has no write routes. `HubServer` runs a stdlib HTTP front on 127.0.0.1 that

- implements the write routes `huggingface_hub` uses (create repo, validate-yaml, preupload,
  LFS batch + basic upload, NDJSON commit, branch, tag) as real git operations on the bare
  mirror repositories (LFS files are committed with their real content, so olah serves them);
- forwards every other request to olah, the way clients see a single Hub endpoint.

Point `HF_ENDPOINT` (or `huggingface_hub.constants.ENDPOINT`) at `HubServer.endpoint`.
Uploads of LFS-sized files need `HF_HUB_DISABLE_XET=1` on the client (no Xet storage here).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from hub_git import LFS_SUFFIXES, GitStore, HubError

OLAH_ENV = "CPG_ZOO_OLAH"
# Files the Hub stores in LFS by size (or by suffix: hub_git.LFS_SUFFIXES).
LFS_MIN_SIZE = 10 * 1024 * 1024
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


def find_olah() -> str | None:
    """`olah-cli`: `$CPG_ZOO_OLAH`, then PATH, then `.venv-olah/bin/` of the repository."""
    explicit = os.environ.get(OLAH_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    on_path = shutil.which("olah-cli")
    if on_path:
        return on_path
    local = Path(__file__).resolve().parents[1] / ".venv-olah" / "bin" / "olah-cli"
    return str(local) if local.is_file() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    server: _FrontServer

    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(f"{self.command} {self.path}")

    # -- plumbing --------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _error(self, error: HubError) -> None:
        headers = {"X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        self._json(error.status, {"error": error.message, **error.extra}, headers)

    def _dispatch(self, routes: list[tuple[str, Any]]) -> bool:
        path = urlsplit(self.path).path
        for pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                try:
                    handler(**{k: unquote(v) for k, v in match.groupdict().items()})
                except HubError as error:
                    self._error(error)
                return True
        return False

    def _store(self, repo: str) -> GitStore:
        if not self.server.store.exists(repo):
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")
        return self.server.store

    # -- verbs -----------------------------------------------------------------------------
    def do_POST(self) -> None:
        routes = [
            (r"/api/repos/create", self.create_repo),
            (r"/api/validate-yaml", self.validate_yaml),
            (rf"/api/models/{REPO}/preupload/(?P<rev>.+)", self.preupload),
            (rf"/api/models/{REPO}/commit/(?P<rev>.+)", self.commit),
            (rf"/api/models/{REPO}/tag/(?P<rev>.+)", self.tag),
            (rf"/api/models/{REPO}/branch/(?P<branch>.+)", self.branch),
            (rf"/{REPO}\.git/info/lfs/objects/batch", self.lfs_batch),
        ]
        if not self._dispatch(routes):
            self._error(HubError(405, f"POST {self.path} is not supported by the test Hub"))

    def do_PUT(self) -> None:
        if not self._dispatch([(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self.lfs_upload)]):
            self._error(HubError(405, f"PUT {self.path} is not supported by the test Hub"))

    def do_GET(self) -> None:
        routes = [
            (r"/api/whoami-v2", self.whoami),
            (rf"/api/models/{REPO}", self.repo_info),
            (rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", self.repo_info),
        ]
        if not self._dispatch(routes):
            self.forward()

    do_HEAD = do_GET  # noqa: N815

    # -- reads -----------------------------------------------------------------------------
    def whoami(self) -> None:
        """Any bearer token is the account `user` (where a bare repo name is created)."""
        if not self.headers.get("authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": "user", "orgs": []})

    def repo_info(self, repo: str, rev: str = "main") -> None:
        """olah answers 401 for a repo without a revision and for unknown revisions."""
        store = self._store(repo)
        if store.resolve(repo, rev) is None:
            raise HubError(404, f"Revision Not Found for {repo}@{rev}", "RevisionNotFound")
        self.forward(f"/api/models/{repo}/revision/{rev}")

    def forward(self, path: str | None = None) -> None:
        host, port = self.server.olah_address
        connection = http.client.HTTPConnection(host, port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
        connection.request(self.command, path or self.path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        out = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        if "location" in {k.lower() for k in out}:
            olah = f"http://{host}:{port}"
            out = {k: v.replace(olah, self.server.endpoint) for k, v in out.items()}
        self.send_response(response.status)
        for key, value in out.items():
            self.send_header(key, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else len(body)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- writes ----------------------------------------------------------------------------
    def create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        if payload.get("type", "model") != "model":
            raise HubError(400, "the test Hub holds model repos only")
        repo = f"{payload.get('organization') or 'user'}/{payload['name']}"
        url = f"{self.server.endpoint}/{repo}"
        with self.server.store.lock:
            if self.server.store.exists(repo):
                raise HubError(409, "You already created this model repo", url=url)
            self.server.store.create(repo)
        self.server.visibility[repo] = payload.get("visibility", "public")
        self._json(200, {"url": url, "name": repo})

    def validate_yaml(self) -> None:
        self._body()
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, repo: str, rev: str) -> None:
        self._store(repo)
        files = json.loads(self._body())["files"]
        modes = [
            {
                "path": item["path"],
                "uploadMode": "lfs"
                if item["size"] >= LFS_MIN_SIZE or item["path"].endswith(LFS_SUFFIXES)
                else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for item in files
        ]
        self._json(200, {"files": modes, "commitOid": self.server.store.resolve(repo, rev)})

    def lfs_batch(self, repo: str) -> None:
        self._store(repo)
        payload = json.loads(self._body())
        objects = []
        for item in payload["objects"]:
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if not (self.server.store.lfs / item["oid"]).is_file():
                href = f"{self.server.endpoint}/lfs-upload/{item['oid']}"
                answer["actions"] = {"upload": {"href": href}}
            objects.append(answer)
        self._json(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match sha256 {oid}")
        target = self.server.store.lfs / oid
        temp = target.with_suffix(".tmp")
        temp.write_bytes(data)
        temp.replace(target)
        self._send(200, b"")

    def commit(self, repo: str, rev: str) -> None:
        store = self._store(repo)
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        changes: dict[str, bytes | Path | None] = {}
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                changes[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                blob = store.lfs / value["oid"]
                if not blob.is_file():
                    raise HubError(422, f"LFS object {value['oid']} was never uploaded")
                changes[value["path"]] = blob
            elif key in {"deletedFile", "deletedFolder"}:
                changes[value["path"]] = None
        if store.resolve(repo, f"refs/heads/{rev}") is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        message = header.get("summary") or "commit"
        if header.get("description"):
            message += "\n\n" + header["description"]
        with store.lock:
            sha = store.commit(repo, rev, changes, message, header.get("parentCommit"))
        url = f"{self.server.endpoint}/{repo}/commit/{sha}"
        self._json(200, {"commitUrl": url, "commitOid": sha, "success": True})

    def branch(self, repo: str, branch: str) -> None:
        store = self._store(repo)
        start = json.loads(self._body() or b"{}").get("startingPoint") or "main"
        with store.lock:
            if store.resolve(repo, f"refs/heads/{branch}") is not None:
                raise HubError(409, f"Branch {branch} already exists")
            sha = store.resolve(repo, start)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {start}", "RevisionNotFound")
            store.git(repo, "update-ref", f"refs/heads/{branch}", sha)
        self._json(200, {})

    def tag(self, repo: str, rev: str) -> None:
        store = self._store(repo)
        payload = json.loads(self._body())
        name = payload["tag"]
        with store.lock:
            if store.resolve(repo, f"refs/tags/{name}") is not None:
                raise HubError(409, f"Tag {name} already exists")
            sha = store.resolve(repo, rev)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            store.git(repo, "tag", "-a", name, sha, "-m", payload.get("message") or name)
        self._json(200, {})


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, store: GitStore, olah_address: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.store = store
        self.olah_address = olah_address
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[str] = []
        self.visibility: dict[str, str] = {}


class HubServer:
    """olah + the write front, under `root`; `start()`/`stop()` may be called repeatedly."""

    def __init__(self, root: str | Path, olah_cli: str) -> None:
        self.root = Path(root)
        self.olah_cli = olah_cli
        self.mirrors = self.root / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.store = GitStore(self.mirrors)
        self.port = _free_port()
        self.olah_port = _free_port()
        self._front: _FrontServer | None = None
        self._olah: subprocess.Popen[bytes] | None = None
        self.requests: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> HubServer:
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.olah_port}\n"
            f'repos-path = "{self.root / "olah-cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\n'
            f'mirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            "metadata-cache-ttl = 0\n"
            "[accessibility]\n"
            "offline = true\n"
        )
        log = (self.root / "olah.log").open("ab")
        self._olah = subprocess.Popen(
            [self.olah_cli, "-c", str(config)], cwd=self.root, stdout=log, stderr=log
        )
        log.close()
        self._front = _FrontServer(self.port, self.store, ("127.0.0.1", self.olah_port))
        self._front.requests = self.requests
        threading.Thread(target=self._front.serve_forever, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            if self._olah.poll() is not None:
                tail = (self.root / "olah.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"olah exited with {self._olah.returncode}:\n{tail}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.olah_port, timeout=2)
                connection.request("GET", "/api/models/ready/check/refs")
                connection.getresponse().read()
                connection.close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"olah did not answer on port {self.olah_port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._front is not None:
            self._front.shutdown()
            self._front.server_close()
            self._front = None
        if self._olah is not None:
            self._olah.terminate()
            try:
                self._olah.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._olah.kill()
                self._olah.wait()
            self._olah = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
