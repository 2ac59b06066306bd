#!/usr/bin/env python3
"""Reference timings for `npm run bench:perf`: the same MLP and CNN as mse's model zoo, trained
with the same optimiser, batch size and example counts, on random inputs (speed does not depend
on the values). Each phase walks n distinct rows as mse's does (until issue 18 it re-ran one batch
that stayed in cache, which mse's bench never gets). Prints one JSON object.

  torch_reference.py --threads 2 --train 4096 --infer 8192            # both models, both phases
  torch_reference.py --model cnn --phase train --n 4096 --sync        # one timed phase; with --sync it
      prints "ready" after warming up and starts timing when a line arrives on stdin, so several
      processes can be timed over the same interval
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    # LeNet-like MNIST victim of the prediction-poisoning paper: conv20-5, pool, conv50-5, pool, fc500, fc10
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


SHAPES = {"mlp": (mlp, (784,)), "cnn": (cnn, (1, 28, 28))}


def phase(name, kind, n, batch, infer_batch, sync):
    """Time one pass over n distinct random rows, as mse's bench does: training draws its batches
    from a fresh permutation (mse's fit shuffles each epoch), inference walks the rows in order."""
    make, shape = SHAPES[name]
    torch.manual_seed(0)
    model = make()
    if kind == "train":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        X = torch.rand(n, *shape)
        Y = torch.softmax(torch.randn(n, 10), dim=1)

        def run(rows):
            perm = torch.randperm(rows)
            for s in range(0, rows - batch + 1, batch):
                idx = perm[s:s + batch]
                x, y = X.index_select(0, idx), Y.index_select(0, idx)
                opt.zero_grad()
                loss = -(y * F.log_softmax(model(x), dim=1)).sum(dim=1).mean()
                loss.backward()
                opt.step()
            return rows - rows % batch
    else:
        X = torch.rand(n, *shape)

        def run(rows):
            with torch.no_grad():
                for s in range(0, rows, infer_batch):
                    torch.softmax(model(X[s:s + infer_batch]), dim=1).numpy()
            return rows
    run(min(n, 3 * max(batch, infer_batch)))  # warm-up: allocator, thread pool
    if sync:
        print("ready", flush=True)
        sys.stdin.readline()
    t = time.perf_counter()
    examples = run(n)
    return examples, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", type=int, default=4096)
    p.add_argument("--infer", type=int, default=8192)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--model", choices=["mlp", "cnn"])
    p.add_argument("--phase", choices=["train", "infer"])
    p.add_argument("--n", type=int)
    p.add_argument("--sync", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = torch.__config__.show()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "blas": cfg.split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in cfg else "?"}
    if a.model:
        examples, seconds = phase(a.model, a.phase, a.n, a.batch, a.infer_batch, a.sync)
        out.update({"examples": examples, "seconds": seconds})
    else:
        for name, scale in (("mlp", 4), ("cnn", 1)):
            tr = phase(name, "train", a.train * scale, a.batch, a.infer_batch, False)
            inf = phase(name, "infer", a.infer * scale, a.batch, a.infer_batch, False)
            out[name] = {"train_ex_s": tr[0] / tr[1], "infer_ex_s": inf[0] / inf[1]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
