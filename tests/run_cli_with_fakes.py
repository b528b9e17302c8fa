"""Run the real ``oculi`` CLI with the fake backend registered (for subprocess tests).

Usage: ``OCULI_HOME=... OCULI_BACKEND='{"observe": "fake", ...}' python -m tests.run_cli_with_fakes index DIR``
(``tests.search_fakes.fake_env(home)`` builds that environment). ``OCULI_TEST_FLUSH_ITEMS``
makes the indexer write every N items, so a test can interrupt it between writes.
"""

import os

import oculi.tasks.index.stages as index_stages
import tests.search_fakes  # noqa: F401  - registers the "fake" backend
from oculi.cli.main import app

if __name__ == "__main__":
    if os.environ.get("OCULI_TEST_FLUSH_ITEMS"):
        index_stages.FLUSH_ITEMS = int(os.environ["OCULI_TEST_FLUSH_ITEMS"])
    app(prog_name="oculi")
