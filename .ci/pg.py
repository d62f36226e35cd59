"""Start or stop the throwaway PostgreSQL cluster that `make test` shares with every test.

`python .ci/pg.py start STATE` starts a cluster (tests/pgcluster.py: initdb in a temporary
directory, 127.0.0.1, a free port, run as `postgres` when root) and writes its URL and
directory to the JSON file STATE; `python .ci/pg.py stop STATE` stops and removes it.

May import: tests/pgcluster.py, the standard library.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pgcluster import PostgresUnavailable, ThrowawayCluster, create_database, drop_database


def main(argv: list[str]) -> int:
    """Entry point; returns the process exit status."""
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: pg.py start|stop STATE", file=sys.stderr)
        return 2
    state = Path(argv[2])
    if argv[1] == "start":
        cluster = ThrowawayCluster()
        try:
            url = cluster.start()
            drop_database(url, create_database(url, "hie_ci_probe"))
        except PostgresUnavailable as exc:
            cluster.stop()
            print(f"PostgreSQL could not be started: {exc}", file=sys.stderr)
            return 1
        state.write_text(json.dumps({"url": url, "base": str(cluster.base), "run_as": cluster._run_as}))
        print(f"== PostgreSQL ready at {url}")
        return 0
    if not state.exists():
        return 0
    saved = json.loads(state.read_text())
    cluster = ThrowawayCluster(base=Path(saved["base"]))
    cluster._run_as = list(saved["run_as"])
    cluster.stop()
    state.unlink()
    print("== PostgreSQL stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
