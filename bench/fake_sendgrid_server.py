"""Run the tests' fake SendGrid as a process for the benchmark: prints its URL, serves forever."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.sendgrid_api import FakeSendGrid

fake = FakeSendGrid(api_key=sys.argv[1]).start()
print(fake.url, flush=True)
while True:
    time.sleep(3600)
