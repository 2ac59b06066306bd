#!/usr/bin/env python3
"""
ONNX victim fixtures as users export them by accident, each a tiny iris classifier (4 features in
[−1, 1], 3 classes; nearest-centroid scores, as make-onnx-labels-fixture.py, so no training and the
same bytes on every run):

  iris-batch1.onnx        softmax probabilities, exported without dynamic_axes: it takes batches of
                          exactly 1 (torch.onnx.export's default, very common)
  iris-batch5.onnx        the same, traced with a batch of 5: batches of exactly 5
  iris-two-outputs.onnx   two outputs, 'logits' then 'probs'
  iris-nan.onnx           probabilities, but NaN for inputs whose first feature is > 0.5
  iris-mixed.onnx         probabilities, but logits (the scores × 3) where the first feature is > 0.5

  /usr/bin/python3 scripts/make-onnx-odd-fixtures.py test/fixtures/onnx
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


class Centroids(nn.Module):
    """score_c(x) = μ_c·x − |μ_c|²/2, then what `kind` asks for."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.scores = nn.Linear(4, 3)
        with torch.no_grad():
            self.scores.weight.copy_(means)
            self.scores.bias.copy_(-(means**2).sum(1) / 2)

    def forward(self, x):
        z = self.scores(x) * 3  # [n, 3] logits
        p = torch.softmax(z, 1)
        far = x[:, :1] > 0.5  # [n, 1]
        if self.kind == 'two':
            return z, p
        if self.kind == 'nan':
            return torch.where(far, p * float('nan'), p)
        if self.kind == 'mixed':
            return torch.where(far, z, p)
        return p


def export(kind, name, batch=1, dynamic=True, outputs=('probs',)):
    file = os.path.join(out, name)
    axes = {'input': {0: 'n'}, **{o: {0: 'n'} for o in outputs}} if dynamic else None
    torch.onnx.export(
        Centroids(kind).eval(), torch.zeros(batch, 4), file,
        input_names=['input'], output_names=list(outputs), dynamic_axes=axes, opset_version=13,
    )
    print(f'wrote {file} ({os.path.getsize(file)} bytes)')


export('probs', 'iris-batch1.onnx', dynamic=False)
export('probs', 'iris-batch5.onnx', batch=5, dynamic=False)
export('two', 'iris-two-outputs.onnx', outputs=('logits', 'probs'))
export('nan', 'iris-nan.onnx')
export('mixed', 'iris-mixed.onnx')
