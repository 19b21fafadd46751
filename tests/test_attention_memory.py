"""The CPU attention kernel never materialises the (T, T) score matrix: O(H*T*D) memory."""

import subprocess
import sys

PROBE = """
import resource, numpy as np
from minilm.kernels import cpu
h, t, d = 1, 16384, 16
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((h, t, d), dtype=np.float32) for _ in range(3))
cpu.attention(q[:, :64], k[:, :64], v[:, :64])  # compile (or load) before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = cpu.attention(q, k, v, causal=True)
grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
assert np.isfinite(out).all()
print(grown_mb)
"""


def test_attention_memory_is_linear_in_t():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    grown_mb = float(result.stdout.split()[-1])
    scores_mb = 16384 * 16384 * 4 / 2**20  # what a (T, T) float32 matrix would take: 1 GiB
    assert grown_mb < 64, f"peak memory grew by {grown_mb:.0f} MB (scores: {scores_mb:.0f} MB)"
