"""Runs sqlite_rx's own Python server in this process (the anchor for the
comparison test and the benchmark): py_server.py ENDPOINT DATABASE [AUTH_JSON]

AUTH_JSON is {"<permission>": [action codes]}; absent means sqlite_rx's
default authorizer. SIGINT/SIGTERM stop it (sqlite_rx's own handlers).
"""

import json
import logging
import sys

from sqlite_rx.server import SQLiteServer


def main():
    logging.disable(logging.CRITICAL)
    endpoint, database = sys.argv[1], sys.argv[2]
    auth = None
    if len(sys.argv) > 3:
        auth = {int(k): set(v) for k, v in json.loads(sys.argv[3]).items()}
    server = SQLiteServer(bind_address=endpoint, database=database, auth_config=auth)
    server.run()


if __name__ == "__main__":
    main()
