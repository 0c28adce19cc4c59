"""The Ray Tune edge: start or join Ray and check the cluster (cluster), the Tuner and the policy
trainable (tuner), the Searcher adapter over the pure population (searcher), and the dashboard
metrics actor (metrics). The only part of evo that imports Ray at module level."""

from evo.tune.cluster import describe_slots, start_cluster, start_ray
from evo.tune.metrics import MetricsListener
from evo.tune.searcher import EvoSearcher
from evo.tune.tuner import build_tuner, policy_trainable

__all__ = ["EvoSearcher", "MetricsListener", "build_tuner", "describe_slots", "policy_trainable", "start_cluster",
           "start_ray"]
