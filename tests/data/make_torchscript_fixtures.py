#!/usr/bin/python3
"""Writes the TorchScript modules of tests/test_torchscript.cpp (run by ctest before it, with Debian's python3-torch):

    /usr/bin/python3 tests/data/make_torchscript_fixtures.py OUT_DIR

writes into OUT_DIR, with scripts/scoresde_torch.py's save_score_module:
    noise_vp.pt       float32 MLP on [x, t] (d = 2): noise prediction, VP (linear), scaling mean/scale given
    data_ve.pt        float64 MLP (d = 3): x_0 prediction, VE
    v_vp.pt           float64 MLP (d = 2): v prediction, VP
    scaled_ve_traced.pt  float32 MLP (d = 2), traced: scaled_score, VE
    no_sde.pt         float32 MLP (d = 2): parameterization noise, no SDE, no scaling
    no_metadata.pt    the noise_vp network saved without scoresde.json
    wrong_shape.pt    returns (n, 1) for (n, 2) inputs
    wrong_dtype.pt    a float32 module returning float64
    v_ve.pt           v prediction declared with a VE SDE (impossible)
    expected.json     for the first four: x (n rows of d), t (n), output (n rows of d) and score (n rows of d),
                      computed by PyTorch in float64 from the module's own evaluation
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from scoresde_torch import save_score_module  # noqa: E402

out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(20261207)


class Mlp(torch.nn.Module):
    def __init__(self, dim: int, width: int = 16):
        super().__init__()
        self.dim = dim
        self.l1 = torch.nn.Linear(dim + 1, width)
        self.l2 = torch.nn.Linear(width, width)
        self.l3 = torch.nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, t.unsqueeze(1)], dim=1)
        h = torch.nn.functional.silu(self.l1(h))
        h = torch.tanh(self.l2(h))
        return self.l3(h)


class WrongShape(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.l(x)


class WrongDtype(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.l(x).double()


VP = {"sde": "vp", "schedule": "linear", "beta-min": 0.1, "beta-max": 20.0}
VE = {"sde": "ve", "sigma-min": 0.01, "sigma-max": 50.0}


def vp_coefficients(t):
    log_alpha = -0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1
    alpha = torch.exp(log_alpha)
    return alpha, torch.sqrt(1.0 - alpha * alpha)


def ve_coefficients(t):
    # scoresde's VE kernel std from x_0: sigma_min sqrt((sigma_max / sigma_min)^(2t) - 1) (core/sde.cpp)
    return torch.ones_like(t), 0.01 * torch.sqrt(torch.expm1(2.0 * t * math.log(50.0 / 0.01)))


def score_of(parameterization, out, x, alpha, sigma):
    a, s = alpha.unsqueeze(1), sigma.unsqueeze(1)
    if parameterization == "noise":
        return -out / s
    if parameterization == "scaled_score":
        return out / s
    if parameterization == "data":
        return (a * out - x) / (s * s)
    if parameterization == "v":
        return -(s * x + a * out) / s
    raise ValueError(parameterization)


expected = {}


def save(name, net, sde, parameterization, coefficients, dtype, scaling=None, trace=False):
    net = net.to(dtype)
    save_score_module(net, os.path.join(out_dir, name), sde=sde, parameterization=parameterization, scaling=scaling,
                      dim=net.dim, trace=trace)
    if coefficients is None:
        return
    loaded = torch.jit.load(os.path.join(out_dir, name))
    n = 7
    x = torch.randn(n, net.dim, dtype=torch.float64) * 1.5
    t = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
    with torch.no_grad():
        out = loaded(x.to(dtype), t.to(dtype)).to(torch.float64)
    alpha, sigma = coefficients(t)
    expected[name] = {
        "x": x.tolist(),
        "t": t.tolist(),
        "output": out.tolist(),
        "score": score_of(parameterization, out, x, alpha, sigma).tolist(),
    }


save("noise_vp.pt", Mlp(2), VP, "noise", vp_coefficients, torch.float32,
     scaling={"mean": [0.5, -0.25], "scale": [2.0, 1.5]})
save("data_ve.pt", Mlp(3), VE, "data", ve_coefficients, torch.float64)
save("v_vp.pt", Mlp(2), VP, "v", vp_coefficients, torch.float64)
save("scaled_ve_traced.pt", Mlp(2), VE, "scaled_score", ve_coefficients, torch.float32, trace=True)
save("no_sde.pt", Mlp(2), None, "noise", None, torch.float32)
torch.jit.save(torch.jit.script(Mlp(2)), os.path.join(out_dir, "no_metadata.pt"))
save_score_module(WrongShape(), os.path.join(out_dir, "wrong_shape.pt"), sde=VP, parameterization="noise", dim=2)
save_score_module(WrongDtype(), os.path.join(out_dir, "wrong_dtype.pt"), sde=VP, parameterization="noise", dim=2)
# save_score_module refuses v with VE; written by hand to check scoresde's own refusal.
torch.jit.save(torch.jit.script(Mlp(2)), os.path.join(out_dir, "v_ve.pt"),
               _extra_files={"scoresde.json": json.dumps({"dim": 2, "parameterization": "v", "sde": VE})})

with open(os.path.join(out_dir, "expected.json"), "w") as f:
    json.dump(expected, f)
assert math.isfinite(sum(sum(r) for r in expected["noise_vp.pt"]["score"]))
