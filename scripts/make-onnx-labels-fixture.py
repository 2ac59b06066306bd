#!/usr/bin/env python3
"""
The labels-only ONNX victim fixture: a tiny iris classifier exported with torch.onnx.export whose
graph ends in argmax, so it answers one int64 class index per input (shape [n]) — as a user would
export a model that must not leak its scores. mse reads it as output=labels (auto chooses that too).

  /usr/bin/python3 scripts/make-onnx-labels-fixture.py test/fixtures/onnx

The classifier is nearest-centroid, written as a linear layer: score_c(x) = μ_c·x − |μ_c|²/2, with
μ_c the class means of mse's iris training split (features MinMax-scaled to [−1, 1], as mse loads
them; printed by loadDataset('iris')). No training, so the file is the same on every run.
"""
import os
import sys

import torch
from torch import nn

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
means = torch.tensor(
    [[-0.619, 0.194, -0.847, -0.88], [-0.04, -0.338, 0.134, 0.049], [0.3, -0.179, 0.572, 0.604]]
)


class NearestCentroid(nn.Module):
    def __init__(self):
        super().__init__()
        self.scores = nn.Linear(4, 3)
        with torch.no_grad():
            self.scores.weight.copy_(means)
            self.scores.bias.copy_(-(means**2).sum(1) / 2)

    def forward(self, x):
        return self.scores(x).argmax(1)  # [n] int64 class indices


model = NearestCentroid().eval()
file = os.path.join(out, 'iris-labels.onnx')
torch.onnx.export(
    model, torch.zeros(1, 4), file,
    input_names=['input'], output_names=['label'], dynamic_axes={'input': {0: 'n'}, 'label': {0: 'n'}}, opset_version=13,
)
print(f'wrote {file} ({os.path.getsize(file)} bytes)')
