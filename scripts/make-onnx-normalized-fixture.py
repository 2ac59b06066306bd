#!/usr/bin/env python3
"""
The normalized ONNX victim fixture: the small MNIST CNN of make-onnx-fixture.py, trained as the
official PyTorch MNIST example trains, behind transforms.Normalize((0.1307,), (0.3081,)), and exported
without that step, as users export theirs: its graph expects (x - 0.1307) / 0.3081, not pixels in
[0, 1]. Written with PyTorch's probabilities for the first 100 test digits, normalized by PyTorch, which
`-v onnx:path=…,mean=0.1307,std=0.3081` must reproduce (1e-5), and its accuracy on raw pixels.

  /usr/bin/python3 scripts/make-onnx-normalized-fixture.py ../shared/datasets/mnist test/fixtures/onnx

Trained on the second half of the official t10k split, as make-onnx-fixture.py (this machine has no
official training images): the fixture is for reproducing answers, not for a benchmark figure.
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.1307, 0.3081
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with gzip.open(os.path.join(src, 't10k-images-idx3-ubyte.gz')) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
with gzip.open(os.path.join(src, 't10k-labels-idx1-ubyte.gz')) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
z = (torch.from_numpy(x) - MEAN) / STD  # what transforms.Normalize gives the model

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
zt, yt = z[5000:], torch.from_numpy(y[5000:])
for epoch in range(3):
    perm = torch.randperm(len(zt))
    for i in range(0, len(zt), 64):
        idx = perm[i : i + 64]
        opt.zero_grad()
        nn.functional.cross_entropy(model(zt[idx]), yt[idx]).backward()
        opt.step()
model.eval()
with torch.no_grad():
    probs = torch.softmax(model(z[:100]), 1).numpy()
    acc = float((model(z[:5000]).argmax(1).numpy() == y[:5000]).mean())
    raw_acc = float((model(torch.from_numpy(x[:5000])).argmax(1).numpy() == y[:5000]).mean())
torch.onnx.export(
    model, torch.zeros(1, 1, 28, 28), os.path.join(out, 'mnist-cnn-normalized.onnx'),
    input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}}, opset_version=13,
)
with open(os.path.join(out, 'mnist-cnn-normalized.probs.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'mean': MEAN, 'std': STD, 'first_half_accuracy': acc,
               'first_half_accuracy_unnormalized': raw_acc, 'probs': probs.tolist()}, f)
print(f'accuracy on t10k[:5000] {acc:.4f} normalized, {raw_acc:.4f} on raw pixels; wrote {out}/mnist-cnn-normalized.onnx')
