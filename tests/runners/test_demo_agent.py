"""Demo agent without a sandbox: deterministic edits, prompt file, [fail]."""

from __future__ import annotations

import os

from catalog.demo_agent.__main__ import main


def test_deterministic_and_index_dependent(tmp_path, monkeypatch):
    outs = []
    for i in (0, 1, 0):
        d = tmp_path / f"r{len(outs)}"
        d.mkdir()
        monkeypatch.chdir(d)
        assert main(["--prompt", "hello", "--index", str(i)]) == 0
        outs.append((d / "GOLDPATH_DEMO.md").read_text())
    assert outs[0] == outs[2] != outs[1]


def test_prompt_file_and_readme_append(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("x\n")
    (tmp_path / "p.txt").write_text("from a file")
    assert main(["--prompt-file", "p.txt", "--index", "5"]) == 0
    assert "demo agent run 5" in (tmp_path / "README.md").read_text()


def test_fail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--prompt", "[fail]"]) == 1
    assert os.listdir(tmp_path) == []
