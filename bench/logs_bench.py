"""CPU microseconds per delivery log line (``common.logs.delivery_states`` / ``delivery_rows``).

    .venv/bin/python bench/logs_bench.py [lines] [--text]

Production's logging, without Django: the root logger's one handler (a file handler on
/dev/null with ``RequestIdFilter`` and ``common.logs.formatter("json")``, or ``"text"`` with
``--text``), ``herald.deliveries`` at INFO, an API request's fields bound (account, mode) and
a request id current. Writes ``lines`` lines (default 20000) four ways — one line per call as
the API's send does, a batch of 100 (a bulk claim), ``delivery_rows`` batches of 100, one line
per call with a free-text reason — and prints the process CPU time per line (the figure to
compare on a busy host; wall time is stretched by other processes, CPU is not).
"""

import logging
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import logs, request_id
from common.request_id import RequestIdFilter


def _setup(style: str) -> logging.Handler:
    handler = logging.FileHandler("/dev/null")
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logs.formatter(style))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("herald.deliveries").setLevel(logging.INFO)
    logs.configure()
    return handler


def _cpu_per_line(write, lines: int) -> float:
    start = time.process_time()
    write(lines)
    return (time.process_time() - start) / lines * 1e6


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    lines = int(args[0]) if args else 20000
    _setup("text" if "--text" in sys.argv else "json")
    account = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(100)]

    def one_per_call(n: int) -> None:
        for i in range(n):
            logs.delivery_states("queued", [(ids[i % 100], account)])

    def batches(n: int) -> None:
        for _ in range(n // 100):
            logs.delivery_states("sent", ((pk, account) for pk in ids), provider="sendgrid")

    def rows(n: int) -> None:
        statuses = ("queued", "scheduled", "sent", "failed")
        batch = [(pk, account, statuses[i % 4]) for i, pk in enumerate(ids)]
        for _ in range(n // 100):
            logs.delivery_rows(batch)

    def free_text(n: int) -> None:
        for i in range(n):
            logs.delivery_states("failed", [(ids[i % 100], account)], provider="smtp",
                                 failure="connection", reason="SMTP 421 at mx.example.com")

    logs.bind(account=str(account), mode="live")
    with request_id.bound("req-bench-logs"):
        for name, write in (("one line per call", one_per_call), ("batches of 100", batches),
                            ("delivery_rows x100", rows), ("free-text reason", free_text)):
            write(min(lines, 1000))  # warm up
            print(f"{name:20} {_cpu_per_line(write, lines):6.2f} µs CPU per line")
    logs.clear()


if __name__ == "__main__":
    main()
