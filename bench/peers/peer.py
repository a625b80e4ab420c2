"""Python peers of bench/run.ts: NumPy (GEMM, tiny ops) and PyTorch (everything), where installed.

Run by bench/peers/python.ts as `python3 peer.py '<json config>'`; prints one JSON object on stdout.
Uses the same timing rules as bench/lib/measure.ts (median of runs after warm-up). Thread counts come
from the environment (OPENBLAS_NUM_THREADS etc., set by the caller) and `torch.set_num_threads`.
"""

import gzip
import json
import os
import statistics
import sys
import time

# Elements of each operand of the tiny add (bench/lib/common.ts TINY_ADD).
TINY_ADD = 1000


def time_calls(fn, min_run_ms=150.0, warmup_ms=100.0, runs=5, slow_ms=400.0):
    """Median ms per call; the same calibration, warm-up and runs as timeCalls in bench/lib/measure.ts."""
    def batch(reps):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) * 1000

    def summary(per_call, reps):
        return {"ms": statistics.median(per_call), "minMs": min(per_call), "maxMs": max(per_call),
                "runs": len(per_call), "reps": reps}

    reps = 1
    t = batch(1)
    if t <= slow_ms:
        t = batch(1)
    if t > slow_ms:
        return summary([batch(1) for _ in range(3)], 1)
    while t < min_run_ms / 4 and reps < 1 << 26:
        reps *= 2
        t = batch(reps)
    per_call = max(t / reps, 1e-6)
    batch(int(warmup_ms / per_call) + 1)
    reps = max(1, round(min_run_ms / per_call))
    return summary([batch(reps) / reps for _ in range(runs)], reps)


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def locate(directory, name):
    for candidate in (name + ".gz", name):
        p = os.path.join(directory, candidate)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(directory, name))


def load_split(directory, images, labels):
    import numpy as np
    x = read_idx(locate(directory, images)).reshape(-1, 784).astype(np.float32) / 255.0
    y = read_idx(locate(directory, labels)).astype(np.int64)
    return x, y


def numpy_info():
    import numpy as np
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy: no dict mode
        blas = "unknown"
    return {"version": np.__version__, "blas": blas}


def gemm_numpy(shapes):
    import numpy as np
    rs = np.random.default_rng(0)
    out = []
    for m, k, n in shapes:
        a = rs.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rs.uniform(-1, 1, (k, n)).astype(np.float32)
        out.append({"shape": [m, k, n], **time_calls(lambda: a @ b)})
    return out


def tiny_numpy():
    import numpy as np
    rs = np.random.default_rng(0)
    a4, b4 = rs.standard_normal(TINY_ADD).astype(np.float32), rs.standard_normal(TINY_ADD).astype(np.float32)
    a32, b32 = (rs.standard_normal((32, 32)).astype(np.float32) for _ in range(2))
    return {"add": time_calls(lambda: np.add(a4, b4)), "matmul": time_calls(lambda: np.matmul(a32, b32))}


def gemm_torch(torch, shapes):
    torch.manual_seed(0)
    out = []
    with torch.no_grad():
        for m, k, n in shapes:
            a = torch.rand(m, k) * 2 - 1
            b = torch.rand(k, n) * 2 - 1
            out.append({"shape": [m, k, n], **time_calls(lambda: torch.matmul(a, b))})
    return out


def tiny_torch(torch):
    a4, b4 = torch.randn(TINY_ADD), torch.randn(TINY_ADD)
    a32, b32 = torch.randn(32, 32), torch.randn(32, 32)
    with torch.no_grad():
        return {"add": time_calls(lambda: torch.add(a4, b4)),
                "matmul": time_calls(lambda: torch.matmul(a32, b32))}


def build_model(torch, kind):
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128),
                         nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))


def accuracy(torch, model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(x), 1000):
            correct += (model(x[s:s + 1000]).argmax(1) == y[s:s + 1000]).sum().item()
    return correct / len(x)


def train_torch(torch, spec, train, test):
    """One shuffled epoch (DataLoader-free: a randperm and index_select per batch, as a tuned loop does)."""
    x, y = train
    n, batch = len(x), spec["batch"]
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(model, opt, xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        loss.item()  # read back each step, as every peer does

    def fresh():
        torch.manual_seed(spec["seed"])
        model = build_model(torch, spec["model"])
        model.train()
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    model, opt = fresh()
    tail = n % batch
    for size in [batch] * 3 + ([tail] if tail else []):
        step(model, opt, x[:size], y[:size])
    model, opt = fresh()
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    samples = 0
    for s in range(0, min(n, spec["maxSamples"]), batch):
        idx = perm[s:s + batch]
        step(model, opt, x.index_select(0, idx), y.index_select(0, idx))
        samples += len(idx)
    seconds = time.perf_counter() - t0
    acc = accuracy(torch, model, *test) if samples >= n else None
    return {"samples": samples, "seconds": seconds, "accuracy": acc}


def infer_torch(torch, batch, test_x):
    torch.manual_seed(1)
    model = build_model(torch, "mlp").eval()
    n = len(test_x)
    state = {"s": 0}

    def call():
        s = state["s"]
        if s + batch > n:
            s = 0
        with torch.no_grad():
            model(test_x[s:s + batch]).numpy()
        state["s"] = s + batch

    return time_calls(call, min_run_ms=300.0)


def main():
    cfg = json.loads(sys.argv[1])
    sections = cfg["sections"]
    shapes = cfg.get("gemmShapes", [])
    out = {"python": sys.version.split()[0], "skipped": {}}
    try:
        import numpy  # noqa: F401
        out["numpy"] = numpy_info()
        if "gemm" in sections:
            out["gemmNumpy"] = gemm_numpy(shapes)
        if "ops" in sections:
            out["tinyNumpy"] = tiny_numpy()
    except ImportError as e:
        out["skipped"]["numpy"] = f"numpy not installed ({e})"
        print(json.dumps(out))
        return
    if not cfg.get("torch", True):
        print(json.dumps(out))
        return
    try:
        import torch
    except ImportError as e:
        out["skipped"]["torch"] = f"torch not installed ({e})"
        print(json.dumps(out))
        return
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    out["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    if "gemm" in sections:
        out["gemmTorch"] = gemm_torch(torch, shapes)
    if "ops" in sections:
        out["tinyTorch"] = tiny_torch(torch)
    if "mlp" in sections or "infer" in sections:
        d = cfg["dataDir"]
        test = tuple(torch.from_numpy(a) for a in load_split(d, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    if "mlp" in sections:
        train = tuple(torch.from_numpy(a) for a in load_split(d, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"))
        out["mlpTorch"] = [{**spec, **train_torch(torch, spec, train, test)} for spec in cfg["mlp"]]
    if "infer" in sections:
        out["inferTorch"] = [{"batch": b, **infer_torch(torch, b, test[0])} for b in cfg["inferBatches"]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
