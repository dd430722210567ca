#!/usr/bin/python3
"""Generates the PyTorch interchange test data for tests/test_mlp.cpp (run with Debian's python3-torch):

    /usr/bin/python3 tests/data/make_torch_mlp.py tests/data

writes
    torch_mlp.npz           nn.Linear weights W1, b1, ..., W3, b3 ((out, in) layout, float32) of the network
                            Linear(3, 32) - SiLU - Linear(32, 24) - SiLU - Linear(24, 2), input [x, t]
    torch_mlp_expected.npz  x (n, 2), t (n,), output (n, 2): the network output; score_vp (n, 2): the score
                            under the noise parameterisation with the default VP SDE (-output / sigma_t);
                            v (n, 2), jvp_vp (n, 2): Jacobian-vector products of score_vp with v;
                            divergence_vp (n,): the trace of d score_vp / dx, all computed by PyTorch autograd in
                            float64 from the float32 weights.
"""
import sys

import numpy as np
import torch

out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
torch.manual_seed(20240501)
net = torch.nn.Sequential(
    torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 24), torch.nn.SiLU(), torch.nn.Linear(24, 2)
)
weights = {}
for i, layer in enumerate([m for m in net if isinstance(m, torch.nn.Linear)], start=1):
    weights[f"W{i}"] = layer.weight.detach().numpy().astype(np.float32)
    weights[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32)
np.savez(f"{out_dir}/torch_mlp.npz", **weights)

# Reference values in float64 from the float32 weights, so that the C++ float32 network is compared with exact
# arithmetic on the same weights.
net64 = net.double()
n = 16
gen = torch.Generator().manual_seed(7)
x = torch.randn(n, 2, generator=gen, dtype=torch.float64) * 2.0
t = torch.rand(n, generator=gen, dtype=torch.float64) * 0.98 + 0.01
v = torch.randn(n, 2, generator=gen, dtype=torch.float64)


def sigma_vp(t, beta_min=0.1, beta_max=20.0):
    log_alpha = -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return torch.sqrt(-torch.expm1(2.0 * log_alpha))


def output(x, t):
    return net64(torch.cat([x, t[:, None]], dim=1))


def score(x, t):
    return -output(x, t) / sigma_vp(t)[:, None]


with torch.no_grad():
    out = output(x, t)
    s = score(x, t)
_, jvp = torch.autograd.functional.jvp(lambda xx: score(xx, t), (x,), (v,))
div = torch.zeros(n, dtype=torch.float64)
for j in range(n):
    J = torch.autograd.functional.jacobian(lambda xx: score(xx[None, :], t[j : j + 1])[0], x[j])
    div[j] = torch.trace(J)
np.savez(
    f"{out_dir}/torch_mlp_expected.npz",
    x=x.numpy(),
    t=t.numpy(),
    output=out.numpy(),
    score_vp=s.numpy(),
    v=v.numpy(),
    jvp_vp=jvp.detach().numpy(),
    divergence_vp=div.numpy(),
)
print(f"wrote {out_dir}/torch_mlp.npz and {out_dir}/torch_mlp_expected.npz (torch {torch.__version__})")
