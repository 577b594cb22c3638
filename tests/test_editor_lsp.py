"""The schema in a real editor: yaml-language-server (the engine of VS Code's YAML extension), driven over
LSP (JSON-RPC with Content-Length framing on stdio) against a project `siyu init` made and a broken copy of
its playbook. Asserts the diagnostics (each planted error at its line, none on the starter), completion
(the keys a beat takes, offered under beats[0]) and hover (a property's description, not "At || At").

The server is installed with npm into .cache/ of the checkout (pinned); without node and npm the test is
skipped, unless SIYU_REQUIRE_LSP is set (CI), where it fails instead.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks_fixtures import invoke

ROOT = Path(__file__).resolve().parents[1]
SERVER_VERSION = "1.19.2"  # the last line of releases that runs on Debian's Node 20 (2.x needs Node 22)
CACHE = Path(os.environ.get("SIYU_LSP_CACHE", ROOT / ".cache" / "yaml-language-server"))
# Not a timing assertion: how long to wait for a message before calling the server stuck.
_STUCK = 120


def _unavailable(reason: str) -> None:
    if os.environ.get("SIYU_REQUIRE_LSP"):
        pytest.fail(f"{reason} (SIYU_REQUIRE_LSP is set: .ci/run installs node, npm and the server)")
    pytest.skip(reason)


def _server_bin() -> Path:
    """yaml-language-server at SERVER_VERSION under CACHE, installed with npm when it is not there yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("yaml-language-server runs on Node.js: node and npm are not on PATH (apt-get install nodejs npm)")
    package = CACHE / "node_modules" / "yaml-language-server"
    installed = json.loads((package / "package.json").read_text(encoding="utf-8")).get("version") if (package / "package.json").is_file() else None
    if installed != SERVER_VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [str(npm), "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--loglevel=error", f"yaml-language-server@{SERVER_VERSION}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            _unavailable(f"npm could not install yaml-language-server@{SERVER_VERSION}: {done.stderr.strip()[-500:]}")
    return package / "bin" / "yaml-language-server"


class LspClient:
    """A minimal LSP client: framed JSON-RPC over the server's stdin/stdout, answering its requests."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body.decode("utf-8")))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}, ensure_ascii=False).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        wanted = self.next_id
        self.send({"id": wanted, "method": method, "params": params})
        while True:
            message = self._next(f"the answer to {method}")
            if message.get("id") == wanted and "method" not in message:
                assert "error" not in message, message["error"]
                return message.get("result")

    def wait_diagnostics(self, uri: str) -> list[dict[str, Any]]:
        while uri not in self.diagnostics:
            self._next(f"diagnostics for {uri}")
        return self.diagnostics[uri]

    def _next(self, waiting_for: str) -> dict[str, Any]:
        try:
            message = self.messages.get(timeout=_STUCK)
        except queue.Empty:
            stderr = self.process.stderr.read1(20000).decode("utf-8", "replace") if self.process.poll() is not None and self.process.stderr else ""
            raise AssertionError(f"yaml-language-server sent nothing while waiting for {waiting_for} {stderr}") from None
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif method is not None and "id" in message:  # a request from the server: configuration, registrations
            result: Any = [_SETTINGS.get(item.get("section"), {}) for item in message["params"]["items"]] if method == "workspace/configuration" else None
            self.send({"id": message["id"], "result": result})
        return message

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


# What VS Code's YAML extension sends, less the network: no schema store, no schema downloads.
_SETTINGS: dict[str, Any] = {
    "yaml": {
        "validate": True,
        "hover": True,
        "completion": True,
        "format": {"enable": False},
        "schemaStore": {"enable": False},
        "schemaDownload": {"enable": False},
        "yamlVersion": "1.2",
        "schemas": {},
    },
}

# Each planted mistake: (the starter line it replaces, the broken line, what the editor must say there).
BROKEN = [
    ('  - id: morning-share\n', '  - id: morning-share\n    colour: red\n', "colour"),
    ('    at: "08:30"\n', '    at: "25:00"\n', "pattern"),
    ('    channel: group\n', '    channel: fax\n', 'Valid values: "group", "moments", "private", "live"'),
    ('  quiet_hours: "22:30-08:00"\n', "  quiet_hours: off\n", "pattern"),
]


def _find(lines: list[str], text: str) -> int:
    return next(index for index, line in enumerate(lines) if line == text.rstrip("\n"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("editor") / "camp"
    invoke("init", str(folder), "--from", "education")
    return folder


@pytest.fixture(scope="module")
def lsp(project: Path) -> Any:
    server = _server_bin()
    client = LspClient([shutil.which("node") or "node", str(server), "--stdio"], project)
    client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": project.as_uri(),
            "workspaceFolders": [{"uri": project.as_uri(), "name": project.name}],
            "capabilities": {
                "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": False}},
                "textDocument": {
                    "hover": {"contentFormat": ["markdown", "plaintext"]},
                    "completion": {"completionItem": {"snippetSupport": True, "documentationFormat": ["markdown"]}},
                    "publishDiagnostics": {},
                },
            },
        },
    )
    client.notify("initialized", {})
    client.notify("workspace/didChangeConfiguration", {"settings": _SETTINGS})
    yield client
    client.close()


def _open(lsp: LspClient, path: Path) -> str:
    uri = path.as_uri()
    lsp.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text(encoding="utf-8")}})
    return uri


def test_starter_from_init_is_clean_and_the_broken_copy_errs_at_each_line(project: Path, lsp: LspClient) -> None:
    starter = project / "playbooks" / "education-camp.yaml"
    assert starter.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=../schema.json\n")
    text = starter.read_text(encoding="utf-8")
    planted: list[tuple[str, str]] = []
    for old, new, says in BROKEN:
        assert old in text, old
        text = text.replace(old, new, 1)
        planted.append((new.splitlines()[-1], says))
    # a private beat without its audience: the if/then of the channel rules
    removed = text.splitlines().index("    audience: unpaid")
    text = text.replace("    audience: unpaid\n", "", 1)
    broken = project / "playbooks" / "broken.yaml"
    broken.write_text(text, encoding="utf-8")
    lines = text.splitlines()

    clean = lsp.wait_diagnostics(_open(lsp, starter))
    found = lsp.wait_diagnostics(_open(lsp, broken))
    # diagnostics of one document come once it is validated against the loaded schema; the broken one's
    # arriving shows the schema loaded, and the starter's list is the one for that schema
    assert lsp.diagnostics[starter.as_uri()] == [], clean
    assert not any("Unable to load schema" in d["message"] or "schema" in d["message"].lower() and "resolve" in d["message"] for d in found), found
    by_line: dict[int, list[str]] = {}
    for diagnostic in found:
        by_line.setdefault(diagnostic["range"]["start"]["line"], []).append(diagnostic["message"])
    for line_text, says in planted:
        line = _find(lines, line_text)
        assert line in by_line, (line + 1, line_text, by_line)
        if says != "pattern":
            assert any(says in message for message in by_line[line]), by_line[line]
    beat_start = max(i for i in range(removed) if lines[i].startswith("  - id: "))
    assert any("audience" in m for m in by_line.get(beat_start, [])), (beat_start + 1, by_line)
    planted_lines = {_find(lines, t) for t, _ in planted} | {beat_start}
    assert set(by_line) <= planted_lines, {line + 1: by_line[line] for line in set(by_line) - planted_lines}


def test_completion_under_the_first_beat_offers_a_beats_keys(project: Path, lsp: LspClient) -> None:
    path = project / "playbooks" / "education-camp.yaml"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    first = _find(lines, "  - id: morning-share")
    # a new, empty key line inside beats[0], as the author starts typing one
    edited = "\n".join(lines[: first + 1] + ["    "] + lines[first + 1 :]) + "\n"
    uri = (project / "playbooks" / "completion.yaml").as_uri()
    lsp.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": edited}})
    result = lsp.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": {"line": first + 1, "character": 4}})
    items = result["items"] if isinstance(result, dict) else result
    labels = {item["label"] for item in items}
    # a beat's keys the first beat does not have yet; not the ones it has, nor other objects' keys
    assert {"audience", "variants", "groups", "mix", "pools", "text"} <= labels, sorted(labels)
    assert not labels & {"id", "at", "days", "channel", "persona", "template", "quiet_hours", "beats", "steps"}, sorted(labels)
    audience = next(item for item in items if item["label"] == "audience")
    documentation = audience.get("documentation")
    assert "segment id" in (documentation["value"] if isinstance(documentation, dict) else str(documentation)), audience


def test_hover_shows_the_property_description(project: Path, lsp: LspClient) -> None:
    path = project / "playbooks" / "education-camp.yaml"
    uri = _open(lsp, path) if path.as_uri() not in lsp.diagnostics else path.as_uri()
    lines = path.read_text(encoding="utf-8").splitlines()
    first = _find(lines, "  - id: morning-share")
    at = next(i for i in range(first, len(lines)) if lines[i].startswith("    at:"))
    hover = lsp.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": at, "character": 5}})
    shown = hover["contents"]["value"]
    assert "At || At" not in shown and "||" not in shown, shown
    assert "time of day" in shown and "HH:MM" in shown, shown
    assert "08:30" in shown, shown  # the example
    quiet = _find(lines, '  quiet_hours: "22:30-08:00"')
    hover = lsp.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": quiet, "character": 4}})
    assert "nothing is dispatched inside" in hover["contents"]["value"], hover
