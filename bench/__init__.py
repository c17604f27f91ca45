"""The repository's benchmarks: scripts run by path, and the side-by-side suite (``bench.peers``).

Never installed and never imported by the library; benchmarks are never tests.
"""
