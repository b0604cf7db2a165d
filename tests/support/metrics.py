"""Reading metrics in tests: a sample as `/metrics` serves it, or straight from this process's registry."""
from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def metric(client, name: str, **labels: str) -> float:
    """The value of one sample of `/metrics` (0 when absent)."""
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample_ in family.samples:
            if sample_.name == name and all(sample_.labels.get(k) == v for k, v in labels.items()):
                return sample_.value
    return 0.0


def sample(name: str, **labels) -> float:
    """The current value of a metric sample in this process (0 when never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
