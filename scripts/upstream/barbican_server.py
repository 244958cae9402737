"""Start the real Barbican 23.0.0 for scripts/upstream-suites: tests/components/barbican.py's server
(unauthenticated pipeline, SQLite, orders inside the request, legacy policy, host_href set), detached.

Usage: barbican_server.py STATE_DIR PORT  -> prints "<pid> <url>"; stop it with kill -- -<pid> (own session).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.components.barbican import Barbican, barbican_venv  # noqa: E402


def main() -> None:
    state, port = Path(sys.argv[1]), int(sys.argv[2])
    server = Barbican(venv=barbican_venv(), state=state, port=port)
    server.configure()
    server.start()
    assert server.process is not None
    print(server.process.pid, server.url)


if __name__ == "__main__":
    main()
