"""What `dramatiq tests.support.slow_worker` runs: the environment's runtime with the `testpay` table, built on import like `workers.main`."""
import dramatiq

from app.config import load_settings
from tests.support.slow_handlers import TABLES
from workers.runtime import build_runtime

runtime = build_runtime(load_settings(), tables=TABLES)
broker = runtime.broker
dramatiq.set_broker(broker)
