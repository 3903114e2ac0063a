"""Distributed TF1 programs on Ray: ClusterSpec, Server, and sessions whose variables live on ps tasks."""
from jitflow.distributed.cluster_spec import ClusterSpec
from jitflow.distributed.server import Server

__all__ = ["ClusterSpec", "Server"]
