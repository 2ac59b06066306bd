#!/usr/bin/env python3
"""
The ONNX victim fixture: a small MNIST CNN trained with PyTorch and exported with torch.onnx.export
(NCHW input [n, 1, 28, 28], logits out), as a user of mse would bring one, plus PyTorch's own
probabilities for the first 100 test digits, which mse's ONNX victim must reproduce (1e-5).

  /usr/bin/python3 scripts/make-onnx-fixture.py ../shared/datasets/mnist test/fixtures/onnx

Trained on the second half of the official t10k split (this machine has no official training
images), so its accuracy on the test split is optimistic: the fixture is for reproducing answers,
not for a benchmark figure. Debian's python3-torch (1.13) has torch.onnx.export.
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
from torch import nn

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with gzip.open(os.path.join(src, 't10k-images-idx3-ubyte.gz')) as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
with gzip.open(os.path.join(src, 't10k-labels-idx1-ubyte.gz')) as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
xt, yt = torch.from_numpy(x[5000:]), torch.from_numpy(y[5000:])
for epoch in range(3):
    perm = torch.randperm(len(xt))
    for i in range(0, len(xt), 64):
        idx = perm[i : i + 64]
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
model.eval()
with torch.no_grad():
    probs = torch.softmax(model(torch.from_numpy(x[:100])), 1).numpy()
    acc = float((model(torch.from_numpy(x[:5000])).argmax(1).numpy() == y[:5000]).mean())
torch.onnx.export(
    model, torch.zeros(1, 1, 28, 28), os.path.join(out, 'mnist-cnn.onnx'),
    input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}}, opset_version=13,
)
with open(os.path.join(out, 'mnist-cnn.probs.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'first_half_accuracy': acc, 'probs': probs.tolist()}, f)
print(f'accuracy on t10k[:5000] {acc:.4f}; wrote {out}/mnist-cnn.onnx')
