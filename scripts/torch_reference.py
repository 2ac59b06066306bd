#!/usr/bin/env python3
"""Reference timings for `npm run bench:perf`: the same MLP and CNN as mse's model zoo, trained
with the same optimiser, batch size and example counts, on random inputs (speed does not depend
on the values). Prints one JSON object. Usage: torch_reference.py --threads 2 --train 4096 --infer 8192
"""
import argparse
import json
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


def bench(make, shape, n_train, n_infer, batch, infer_batch):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, *shape)
    y = torch.softmax(torch.randn(batch, 10), dim=1)

    def step():
        opt.zero_grad()
        loss = -(y * F.log_softmax(model(x), dim=1)).sum(dim=1).mean()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    steps = max(1, n_train // batch)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    train = steps * batch / (time.perf_counter() - t)

    xi = torch.rand(infer_batch, *shape)
    with torch.no_grad():
        torch.softmax(model(xi), dim=1)
        reps = max(1, n_infer // infer_batch)
        t = time.perf_counter()
        for _ in range(reps):
            torch.softmax(model(xi), dim=1)
        infer = reps * infer_batch / (time.perf_counter() - t)
    return {"train_ex_s": train, "infer_ex_s": infer}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", type=int, default=4096)
    p.add_argument("--infer", type=int, default=8192)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "blas": torch.__config__.show().split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in torch.__config__.show() else "?"}
    out["mlp"] = bench(mlp, (784,), a.train * 4, a.infer * 4, a.batch, a.infer_batch)
    out["cnn"] = bench(cnn, (1, 28, 28), a.train, a.infer, a.batch, a.infer_batch)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
