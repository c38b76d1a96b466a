"""The retrieval commands through the real root CLI (`python -m agent.cli`), in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], env_dir: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, MOESEARCH_DATA_DIR=str(env_dir), MOESEARCH_DB=str(env_dir / "moesearch.db"))
    env.update(kw.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def one_line_error(p: subprocess.CompletedProcess, code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning: command group")]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-data")


def test_index_build_jsonl_search_json_and_queries(cli_data, small_jsonl, tmp_path):
    p = run(["index", "build", str(small_jsonl)], cli_data)
    assert p.returncode == 0, p.stderr
    assert "index ready" in p.stdout
    qfile = tmp_path / "q.txt"
    qfile.write_text("Shirley Temple Chief of Protocol\n\nMeet Corliss Archer radio\n" + "x" * 3000 + "\n")
    p = run(["search", "--corpus", str(small_jsonl), "--queries", str(qfile), "--k", "3"], cli_data)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["query"][:20] for r in rows] == ["Shirley Temple Chief", "Meet Corliss Archer ", "x" * 20]
    assert rows[0]["hits"][0]["title"] == "Shirley Temple"
    assert set(rows[0]["hits"][0]) >= {"url", "title", "snippet", "score"}
    assert rows[2]["hits"] == [] and "too long" in rows[2]["error"]
    p = run(["search", "Kiss and Tell Corliss Archer", "--corpus", str(small_jsonl)], cli_data)
    assert p.returncode == 0 and "1. Kiss and Tell (1945 film)" in p.stdout
    assert "corpus://small.jsonl/Kiss_and_Tell" in p.stdout  # documents without a url get a corpus:// one


def test_index_build_folder_and_add(cli_data, tmp_path, shared_data):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(shared_data / "wiki_pages" / "Anglo-Zanzibar_War.txt", folder)
    (folder / "kites.md").write_text("# Kites\n\nThe kite festival happens every April on the northern beach.\n")
    p = run(["index", "build", str(folder)], cli_data)
    assert p.returncode == 0 and "2 documents" in p.stdout, p.stderr
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"id": "z", "title": "Zorblax", "text": "Zorblax is a made-up moon of Neptune."}) + "\n")
    p = run(["index", "add", str(extra), "--corpus", str(folder)], cli_data)
    assert p.returncode == 0 and "added 1" in p.stdout, p.stderr
    p = run(["search", "made-up moon of Neptune", "--corpus", str(folder), "--json", "--k", "1"], cli_data)
    assert json.loads(p.stdout)["hits"][0]["title"] == "Zorblax"


def test_bad_input_gives_one_line_errors(cli_data, tmp_path):
    assert "not found" in one_line_error(run(["index", "build", str(tmp_path / "nope.jsonl")], cli_data), 2)
    assert "empty query" in one_line_error(run(["search", "  "], cli_data), 2)
    port = free_port()
    err = one_line_error(run(["search", "x", "--searxng-url", f"http://127.0.0.1:{port}"], cli_data), 3)
    assert "cannot reach SearXNG" in err
    assert "only http and https" in one_line_error(run(["fetch", "file:///etc/passwd"], cli_data), 2)


def test_web_serve_and_fetch(cli_data, small_jsonl):
    port = free_port()
    env = dict(os.environ, MOESEARCH_DATA_DIR=str(cli_data), MOESEARCH_DB=str(cli_data / "moesearch.db"))
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "web", "serve", "--corpus", str(small_jsonl),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/search?q=Shirley+Temple&format=json", timeout=5) as r:
                    data = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline
                time.sleep(0.5)
        assert data["results"][0]["title"] == "Shirley Temple"
        page_url = data["results"][0]["url"]
        p = run(["fetch", page_url, "--json", "--searxng-url", base, "--query", "government position", "--k", "1"],
                cli_data)
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["title"] == "Shirley Temple" and "Chief of Protocol" in doc["text"] and "cookie" not in doc["text"]
        assert doc["text"][doc["passages"][0]["start"]:doc["passages"][0]["end"]] == doc["passages"][0]["text"]
        p = run(["search", "Shirley Temple", "--searxng-url", base, "--k", "2", "--json"], cli_data)
        assert json.loads(p.stdout)["hits"][0]["url"] == page_url
    finally:
        proc.terminate()
        proc.wait(10)
