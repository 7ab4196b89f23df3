"""The write side of the tests' local Hub: model repos as bare git repositories under
olah's mirrors path (create, commit files with LFS content, resolve revisions), and the
HTTP errors the write routes answer with."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

# Files the Hub stores in LFS by default (its .gitattributes).
LFS_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".npz", ".zip")
GITATTRIBUTES = b"".join(
    f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n".encode() for suffix in LFS_SUFFIXES
)


class HubError(Exception):
    """An HTTP error answer: status, message and optional `X-Error-Code`."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class GitStore:
    """Bare git repositories under `<mirrors>/models/<org>/<name>`, written with plumbing."""

    def __init__(self, mirrors: Path) -> None:
        self.mirrors = mirrors
        self.lfs = mirrors.parent / "lfs-objects"
        self.lfs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def path(self, repo: str) -> Path:
        return self.mirrors / "models" / repo

    def exists(self, repo: str) -> bool:
        return self.path(repo).is_dir()

    def git(self, repo: str, *args: str, data: bytes | None = None, **env: str) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.path(repo),
            input=data,
            capture_output=True,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "hub",
                "GIT_AUTHOR_EMAIL": "hub@localhost",
                "GIT_COMMITTER_NAME": "hub",
                "GIT_COMMITTER_EMAIL": "hub@localhost",
                **env,
            },
            check=False,
        )
        if result.returncode != 0:
            raise HubError(500, f"git {' '.join(args)}: {result.stderr.decode().strip()}")
        return result.stdout.decode().strip()

    def resolve(self, repo: str, revision: str) -> str | None:
        """Commit sha of a branch, tag or sha; None if unknown."""
        try:
            return self.git(repo, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}")
        except HubError:
            return None

    def create(self, repo: str) -> None:
        path = self.path(repo)
        path.mkdir(parents=True)
        self.git(repo, "init", "-q", "--bare", "-b", "main")
        self.commit(repo, "main", {".gitattributes": GITATTRIBUTES}, "initial commit")

    def commit(
        self,
        repo: str,
        branch: str,
        changes: dict[str, bytes | Path | None],
        message: str,
        parent_commit: str | None = None,
    ) -> str:
        """Apply `changes` (path -> content, a file to add, or None to delete) to `branch`."""
        parent = self.resolve(repo, f"refs/heads/{branch}")
        if parent_commit and (parent is None or not parent.startswith(parent_commit)):
            raise HubError(412, f"parent commit {parent_commit} is not the head of {branch}")
        with tempfile.TemporaryDirectory() as tmp:
            # An empty work tree: `update-index --force-remove` refuses to run in a bare repo.
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": tmp}
            self.git(repo, "read-tree", parent or "--empty", **env)
            listed = self.git(repo, "ls-files", **env).splitlines()
            for path, content in changes.items():
                if content is None:
                    prefix = path.rstrip("/") + "/"
                    for name in [n for n in listed if n == path or n.startswith(prefix)]:
                        self.git(repo, "update-index", "--force-remove", name, **env)
                    continue
                if isinstance(content, Path):
                    sha = self.git(repo, "hash-object", "-w", str(content))
                else:
                    sha = self.git(repo, "hash-object", "-w", "--stdin", data=content)
                self.git(
                    repo, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", **env
                )
            tree = self.git(repo, "write-tree", **env)
        parents = ["-p", parent] if parent else []
        sha = self.git(repo, "commit-tree", tree, *parents, "-m", message)
        self.git(repo, "update-ref", f"refs/heads/{branch}", sha, parent or "")
        return sha
