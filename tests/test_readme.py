"""The README's promises that a test can check: the test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q'
    assert command in readme
    assert command in ci.splitlines()
