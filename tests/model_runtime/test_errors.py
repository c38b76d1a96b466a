"""Every error a user can cause in the model runtime, caused for real: one line that says what to do, no traceback."""

import pytest

from tests.conftest import free_port
from tests.model_runtime.conftest import run_cli


def assert_one_line_error(proc, exit_code: int, *needles: str) -> None:
    assert proc.returncode == exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_model_file(tmp_path):
    proc = run_cli("model", "generate", "hi", "--model", str(tmp_path / "nope.gguf"))
    assert_one_line_error(proc, 3, "does not exist")


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    proc = run_cli("model", "generate", "hi", "--model", str(bad))
    assert_one_line_error(proc, 3, "not a GGUF file")


def test_truncated_model_file(tmp_path, embedded_model_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded_model_path.read_bytes()[: 5_000_000])  # right magic, missing tensors
    proc = run_cli("model", "generate", "hi", "--model", str(cut))
    assert_one_line_error(proc, 3, "could not load")


def test_unknown_preset():
    proc = run_cli("model", "generate", "hi", "--model", "gpt-17")
    assert_one_line_error(proc, 2, "unknown model", "embedded")


def test_pull_offline(tmp_path):
    # This machine has no route to the model hub, so the download fails for real.
    proc = run_cli("model", "pull", "olmoe-1b-7b-instruct", env={"MOESEARCH_MODELS_DIR": str(tmp_path)})
    assert_one_line_error(proc, 3, "offline")
    assert not list(tmp_path.glob("*.gguf"))


def test_prompt_longer_than_context():
    proc = run_cli("model", "generate", "word " * 2000, "--n-ctx", "256")
    assert_one_line_error(proc, 2, "context window is 256")


def test_server_unreachable():
    port = free_port()  # nothing listens there
    proc = run_cli("model", "generate", "hi", "--backend", "openai", "--openai-url", f"http://127.0.0.1:{port}/v1")
    assert_one_line_error(proc, 3, "cannot reach the model server", "moesearch model serve")


def test_server_error_is_reported(model_server):
    # the server's context is 4096 tokens; this prompt does not fit, the server says so, the client reports it
    proc = run_cli("model", "generate", "word " * 5000, "--backend", "openai", "--openai-url", model_server)
    assert_one_line_error(proc, 3, "HTTP 400", "context window")


@pytest.mark.parametrize("env,needle", [({"MOESEARCH_N_CTX": "lots"}, "n_ctx"),
                                        ({"MOESEARCH_BACKEND": "tensorflow"}, "backend")])
def test_invalid_settings(env, needle):
    proc = run_cli("model", "generate", "hi", env=env)
    assert_one_line_error(proc, 2, "invalid setting", needle)


def test_empty_prompt():
    assert_one_line_error(run_cli("model", "generate", "  "), 2, "prompt is empty")
