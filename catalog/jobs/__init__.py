"""One job framework for every background unit with a row (workspace builds, agent runs).

`models` holds the abstract job row and log line; `lifecycle` the steps only a worker takes (claim, heartbeat,
log, cancel request, finish, reap) for any `JobKind`; `worker` the buffered log writer and heartbeat thread.
In the spirit of AWX's UnifiedJob and NetBox's JobRunner (DESIGN.md, conventions 3, 4 and 6).
"""
