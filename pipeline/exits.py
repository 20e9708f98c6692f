"""The exit codes of serve's stage processes, and what the supervisor does about each: written once
here for the stages that end with them and the supervisor that reads them."""
from __future__ import annotations

ENDED = 0     # a capture's source is done (a file played to its end); any other stage stopped when told
FATAL = 2     # a mistake restarting cannot fix (bad weights, unwritable output, unreadable source): also
              # serve's own exit code when it stops for one
FAILED = FATAL  # a capture's source cannot be read: the stream is marked failed, never restarted
STALLED = 3   # a capture whose source stopped answering within its timeouts: restarted
KILLED = -9   # a stage killed by SIGKILL, or whose host (Ray actor, node) died: restarted


def describe(code: int) -> str:
    """How a stage's end reads in the serve log ('was killed by signal 9', 'exited with status 1')."""
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
