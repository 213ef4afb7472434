"""`python -m app`: serve Stackpilot with waitress, in one process."""

import gc

gc.disable()  # for start-up only: app.server.main turns it back on (see why there)

from app.server import main  # noqa: E402

main()
