"""`python -m app`: serve Stackpilot with waitress, in one process."""

from app.server import main

main()
