"""The README's promises that a test can check: the test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q'
    assert command in readme
    assert command in ci.splitlines()


def test_the_two_setup_commands_each_have_their_own_code_block():
    """A newcomer copies a whole block: each set-up command is the only line of its block."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"^```bash\n(.*?)^```", readme, re.S | re.M)]
    venv = "python3.11 -m venv .venv && . .venv/bin/activate && "
    assert venv + 'pip install torch==2.13.0 -e ".[train]" && ticketpack demo' in blocks
    assert venv + 'pip install torch==2.13.0 -e ".[test]" && python -m pytest -q' in blocks
