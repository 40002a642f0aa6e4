"""Sweeps: grids of runs on this machine or a cluster, resumable (grid, cluster, cli), finished runs reused
(reuse), committed runs trained again and compared (rerun)."""
