"""A small Hugging Face Hub-compatible HTTP server for offline tests.

It implements just enough of the Hub API for the real `huggingface_hub` client (2.x) and `transformers`:
whoami, create repo, model info, validate-yaml, preupload, commit (ndjson), tree, paths-info and resolve.
Every file is answered as "regular" at preupload, so contents arrive base64 inside the commit and no
LFS/Xet transfer is ever needed. Storage is in memory; the server listens on 127.0.0.1 on a free port.

Knobs for tests:
    server.fail_next(n, status=500, path_contains="")  -> the next n matching requests fail with `status`
    server.require_token = True                         -> requests without a valid token get 401
    server.requests                                      -> list of "METHOD /path" seen (for assertions)

Usage:
    with HubServer() as hub:                 # or hub.start() / hub.stop()
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
"""

import base64
import datetime
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "testuser"
DEFAULT_TOKEN = "hf_TestTokenDoNotLeak0123456789abcdef"


def git_blob_sha1(data: bytes) -> str:
    # Same id git (and the Hub) gives a regular file; the client compares it to skip unchanged files.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    title: str
    date: str
    files: dict  # path -> bytes (the full tree at this commit)


@dataclass
class Repo:
    repo_id: str
    owner: str  # namespace that may write
    private: bool
    commits: list = field(default_factory=list)  # oldest first; commits[-1] is the head of "main"

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit_for(self, revision: str):
        if revision in ("main", "HEAD"):
            return self.head
        for commit in self.commits:
            if commit.oid == revision:
                return commit
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _new_commit(title: str, files: dict, parent: str = "") -> Commit:
    digest = hashlib.sha1(f"{parent}\n{title}\n{_now()}\n".encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + git_blob_sha1(files[path]).encode())
    return Commit(oid=digest.hexdigest(), title=title, date=_now(), files=dict(files))


class HubServer:
    def __init__(self, users=None, orgs=("org",)):
        # token -> user name; every user may write to its own namespace and to `orgs`
        self.users = dict(users or {DEFAULT_TOKEN: DEFAULT_USER})
        self.orgs = list(orgs)
        self.token = next(iter(self.users))
        self.repos: dict = {}
        self.require_token = False
        self.requests: list = []
        self._failures: list = []  # [remaining, status, path_contains]
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # ---- test knobs -------------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 500, path_contains: str = ""):
        """Answer the next `n` requests whose path contains `path_contains` with `status`."""
        with self._lock:
            self._failures.append([n, status, path_contains])

    def clear_failures(self):
        with self._lock:
            self._failures.clear()

    def files(self, repo_id: str, revision: str = "main") -> dict:
        """Files of a repo at a revision: path -> bytes."""
        return dict(self.repos[repo_id].commit_for(revision).files)

    def create_repo(self, repo_id: str, owner: str = None, private: bool = False):
        """Create a repo directly (for example one owned by someone else, to test 'name taken')."""
        owner = owner or repo_id.split("/")[0]
        repo = Repo(repo_id=repo_id, owner=owner, private=private)
        repo.commits.append(_new_commit("initial commit", {".gitattributes": b""}))
        self.repos[repo_id] = repo
        return repo

    # ---- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        hub = self

        class Handler(_HubHandler):
            server_state = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- helpers used by the handler ------------------------------------------------------------------
    def _take_failure(self, path: str):
        with self._lock:
            for failure in self._failures:
                remaining, status, needle = failure
                if remaining > 0 and needle in path:
                    failure[0] -= 1
                    return status
        return None

    def _user_for(self, token):
        return self.users.get(token) if token else None

    def _may_write(self, user, repo_id: str) -> bool:
        namespace = repo_id.split("/")[0]
        repo = self.repos.get(repo_id)
        owner = repo.owner if repo else namespace
        return user is not None and (owner == user or owner in self.orgs)


class _HubHandler(BaseHTTPRequestHandler):
    server_state: HubServer = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    # ---- plumbing --------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body=b"", headers=None, content_type="application/json"):
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str = None, headers=None):
        headers = dict(headers or {})
        headers["X-Error-Message"] = message
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _token(self):
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None

    # ---- dispatch ----------------------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        hub = self.server_state
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        body = self._body() if self.command == "POST" else b""
        hub.requests.append(f"{self.command} {path}")

        status = hub._take_failure(path)
        if status is not None:
            return self._error(status, f"Injected failure {status}")

        token = self._token()
        user = hub._user_for(token)
        if token and user is None:
            # The real Hub answers any request carrying a wrong token with this 401.
            return self._error(401, "Invalid credentials in Authorization header")
        if hub.require_token and user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        self.user = user

        try:
            route = self._route(path)
            if route is None:
                return self._error(404, f"Unknown endpoint {self.command} {path}")
            handler, args = route
            return handler(*args, query=query, body=body)
        except Exception as error:  # a server bug must show up as a 500, not a hung client
            return self._error(500, f"Server error: {error!r}")

    def _route(self, path: str):
        m = self.command
        if path == "/api/whoami-v2" and m == "GET":
            return self._whoami, ()
        if path == "/api/repos/create" and m == "POST":
            return self._create_repo, ()
        if path == "/api/validate-yaml" and m == "POST":
            return self._validate_yaml, ()
        api = re.fullmatch(r"/api/models/(.+?)(?:/(preupload|commit|tree|paths-info|revision)/([^/]+)(/.*)?)?", path)
        if api:
            repo_id, action, revision, rest = api.groups()
            rest = (rest or "").lstrip("/")
            if action is None and m == "GET":
                return self._model_info, (repo_id, "main")
            if action == "revision" and m == "GET":
                return self._model_info, (repo_id, revision)
            if action == "preupload" and m == "POST":
                return self._preupload, (repo_id, revision)
            if action == "commit" and m == "POST":
                return self._commit, (repo_id, revision)
            if action == "tree" and m == "GET":
                return self._tree, (repo_id, revision, rest)
            if action == "paths-info" and m == "POST":
                return self._paths_info, (repo_id, revision)
            return None
        resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
        if resolve and m in ("GET", "HEAD"):
            return self._resolve, resolve.groups()
        return None

    # ---- repo access -----------------------------------------------------------------------------------
    def _readable_repo(self, repo_id: str):
        hub = self.server_state
        repo = hub.repos.get(repo_id)
        if repo is None or (repo.private and not hub._may_write(self.user, repo_id)):
            # The Hub hides private repos behind the same "not found" answer.
            self._error(404 if self.user else 401, "Repository not found", "RepoNotFound")
            return None
        return repo

    def _commit_at(self, repo, revision: str):
        commit = repo.commit_for(revision)
        if commit is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _writable_repo(self, repo_id: str):
        repo = self._readable_repo(repo_id)
        if repo is None:
            return None
        if self.user is None:
            self._error(401, "You must be authenticated to write to a repo")
            return None
        if not self.server_state._may_write(self.user, repo_id):
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None
        return repo

    # ---- endpoints -----------------------------------------------------------------------------------------
    def _whoami(self, query, body):
        if self.user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        orgs = [{"name": org, "type": "org", "roleInOrg": "write"} for org in self.server_state.orgs]
        self._send(200, {
            "type": "user", "name": self.user, "fullname": self.user, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def _create_repo(self, query, body):
        hub = self.server_state
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") != "model":
            return self._error(400, "This test server only hosts model repos")
        if self.user is None:
            return self._error(401, "You must be authenticated to create a repo")
        namespace = payload.get("organization") or self.user
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{hub.url}/{repo_id}"
        with hub._lock:
            if repo_id in hub.repos:
                message = "You already created this model repo"
                return self._send(409, {"error": message, "url": url}, {"X-Error-Message": message})
            if namespace != self.user and namespace not in hub.orgs:
                return self._error(403, f"You don't have the rights to create a model under the namespace {namespace}")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            hub.create_repo(repo_id, owner=namespace, private=private)
        self._send(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def _validate_yaml(self, query, body):
        self._send(200, {"errors": [], "warnings": []})

    def _model_info(self, repo_id, revision, query, body):
        repo = self._readable_repo(repo_id)
        commit = repo and self._commit_at(repo, revision)
        if commit is None:
            return
        self._send(200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
            "createdAt": repo.commits[0].date, "private": repo.private, "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        })

    def _preupload(self, repo_id, revision, query, body):
        repo = self._writable_repo(repo_id)
        commit = repo and self._commit_at(repo, revision)
        if commit is None:
            return
        files = []
        for item in json.loads(body)["files"]:
            existing = commit.files.get(item["path"])
            files.append({
                "path": item["path"],
                "uploadMode": "regular",  # contents travel base64 in the commit: no LFS, no Xet
                "shouldIgnore": False,
                "oid": git_blob_sha1(existing) if existing is not None else None,
            })
        self._send(200, {"files": files, "commitOid": commit.oid})

    def _commit(self, repo_id, revision, query, body):
        hub = self.server_state
        repo = self._writable_repo(repo_id)
        if repo is None:
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        with hub._lock:
            commit = self._commit_at(repo, revision)
            if commit is None:
                return
            parent = header.get("parentCommit")
            if parent and parent != commit.oid:
                return self._error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(commit.files)
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                elif key == "lfsFile":
                    return self._error(400, "LFS is not supported by this test server (preupload says regular)")
            new = _new_commit(header.get("summary", ""), files, parent=commit.oid)
            repo.commits.append(new)
        self._send(200, {"success": True, "commitOid": new.oid, "commitUrl": f"{hub.url}/{repo_id}/commit/{new.oid}",
                         "pullRequestUrl": None})

    @staticmethod
    def _entries(files: dict, under: str, recursive: bool) -> list:
        prefix = under.rstrip("/") + "/" if under else ""
        entries, folders = [], set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folders.add(prefix + "/".join(parts[:depth]))
            entries.append(_file_entry(path, files[path]))
        entries += [_folder_entry(folder) for folder in sorted(folders)]
        return entries

    def _tree(self, repo_id, revision, under, query, body):
        repo = self._readable_repo(repo_id)
        commit = repo and self._commit_at(repo, revision)
        if commit is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        if under and under not in commit.files and not any(p.startswith(under.rstrip("/") + "/") for p in commit.files):
            return self._error(404, f"{under} does not exist", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        self._send(200, self._entries(commit.files, under, recursive))

    def _paths_info(self, repo_id, revision, query, body):
        repo = self._readable_repo(repo_id)
        commit = repo and self._commit_at(repo, revision)
        if commit is None:
            return
        form = parse_qs(body.decode()) if body else {}
        answer = []
        for path in form.get("paths", []):
            if path in commit.files:
                answer.append(_file_entry(path, commit.files[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                answer.append(_folder_entry(path))
        self._send(200, answer)

    def _resolve(self, repo_id, revision, filename, query, body):
        repo = self._readable_repo(repo_id)
        commit = repo and self._commit_at(repo, revision)
        if commit is None:
            return
        data = commit.files.get(filename)
        headers = {"X-Repo-Commit": commit.oid}
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound", headers)
        headers["ETag"] = f'"{git_blob_sha1(data)}"'
        headers["Accept-Ranges"] = "bytes"
        status, payload = 200, data
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range and self.command == "GET":
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(data) - 1
            payload = data[start:end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + len(payload) - 1}/{len(data)}"
        self._send(status, payload, headers, content_type="application/octet-stream")


def _file_entry(path: str, data: bytes) -> dict:
    return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}


if __name__ == "__main__":  # manual use: python tests/hub_server.py
    import time

    with HubServer() as hub:
        print(f"HF_ENDPOINT={hub.url} HF_TOKEN={hub.token}", flush=True)
        while True:
            time.sleep(3600)
