"""What `dramatiq workers.main` runs: the runtime for the environment's settings, built on import by design.

Dramatiq imports the module it is given and takes the global broker, so this module (and
only this one) builds the runtime at import: the Procfile's `worker:` line and `entitle
worker` name it. It makes the metrics directory first, because prometheus-client writes
its files there from the moment `app.metrics` is imported.
"""
import os

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

import dramatiq  # noqa: E402

from app.config import load_settings  # noqa: E402
from workers.runtime import build_runtime  # noqa: E402

runtime = build_runtime(load_settings())
broker = runtime.broker
dramatiq.set_broker(broker)
