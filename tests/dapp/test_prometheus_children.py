"""Request-path metric updates: counts per label set through the cached labelled children."""

from __future__ import annotations

from dapp.metrics import FALLBACK_REASONS, DappMetrics


def _sample(metrics: DappMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counts_land_on_their_own_label_sets() -> None:
    metrics = DappMetrics()
    for reason in FALLBACK_REASONS:                            # exported before any event
        assert _sample(metrics, "kdran_dapp_fallbacks_total", reason=reason) == 0
    for _ in range(3):
        metrics.count_predictions("v1", "active", 2)
        metrics.count_predictions("v2", "shadow", 5)
        metrics.count_predictions("v1", "shadow", 1)
        metrics.count_fallbacks("deadline", 4)
        metrics.observe_latency("Observe", 15e-6)
        metrics.observe_latency("Predict", 300e-6)
    predictions = "kdran_dapp_predictions_total"
    assert _sample(metrics, predictions, model_version="v1", role="active") == 6
    assert _sample(metrics, predictions, model_version="v2", role="shadow") == 15
    assert _sample(metrics, predictions, model_version="v1", role="shadow") == 3
    assert _sample(metrics, "kdran_dapp_fallbacks_total", reason="deadline") == 12
    assert _sample(metrics, "kdran_dapp_fallbacks_total", reason="no_model") == 0
    latency = "kdran_dapp_request_latency_seconds_bucket"
    assert _sample(metrics, latency, rpc="Observe", le="2e-05") == 3
    assert _sample(metrics, latency, rpc="Predict", le="0.0002") == 0
    assert _sample(metrics, latency, rpc="Predict", le="0.0003") == 3
    assert [(s.rpc, s.count) for s in metrics.latency_stats()] == [("Observe", 3),
                                                                  ("Predict", 3)]
    # one cached child per label set, the very one the family exports
    cached = metrics._prediction_children
    assert len(cached) == 3 and len(metrics._latency_children) == 2
    assert cached[("v1", "active")] is metrics.predictions.labels("v1", "active")
