"""`minilm bench --backend cuda`: the GEMV and attention cases check their results and report
(tiny shapes in the simulator; the decode case is covered by test_model_cuda.py's checks)."""

from minilm import bench


def test_gemv_and_attention_cases_run():
    lines = []
    results = bench.run(["cuda-gemv", "cuda-attention"], quick=True, backend="cuda",
                        echo=lines.append)
    assert [r.unit for r in results] == ["GB/s"] * 3 + ["GFLOP/s"] * 3
    assert all(r.seconds > 0 for r in results) and len(lines) == 2
    assert "4-bit nf v2" in lines[0] and "8-bit int v2" in lines[0] and "cuda v2" in lines[1]
