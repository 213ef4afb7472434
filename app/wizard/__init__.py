"""The setup wizard's domain: its saved progress, preflight checks, the plan shown for review,
recipes for known stacks, and the launch that writes files and starts the stack.

Nothing here imports Flask. Nothing is written to the stack folder before the launch step.
"""

STEPS = ("claim", "preflight", "stack", "config", "https", "review", "launch")
TITLES = {
    "claim": "Admin account",
    "preflight": "Checks",
    "stack": "Stack",
    "config": "Configuration",
    "https": "HTTPS",
    "review": "Review",
    "launch": "Launch",
}
