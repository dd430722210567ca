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
    gauss_ddpm_index.pt  float64: the exact noise prediction of Gaussian data N(mu, s^2 I) (d = 2; gaussian.json)
                      under DDPM's discrete linear schedule (N = 1000, ddpm_alphas_cumprod.txt), computed from its
                      index input n = (t - 1/N) N alone
    gauss_short_index.pt  the same for a short discrete schedule (N = 40) and DPM-Solver's index scale 1000
                      (declared index-scale: the module receives (t - 1/N) 1000)
    echo_index.pt     float64, data parameterisation, DDPM's schedule, time input index: returns its time input
                      (broadcast to the shape of x), so the score at x = 0 is alpha t_input / sigma^2
    conv_image.pt     float32 convolutional module on points of shape (2, 4, 4) (d = 32), noise, VP
    conv_image_wrong.pt  the same declaring shape (4, 2, 4): its convolution refuses the input channels
    bad_shape_meta.pt the conv module with metadata shape (3, 3), whose product is not dim = 32
    expected.json     for noise_vp, data_ve, v_vp, scaled_ve_traced and conv_image: x (n rows of d, C order), t
                      (n), output (n rows of d) and score (n rows of d), computed by PyTorch in float64 from the
                      module's own evaluation
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


# ---------------------------------------------------------------------------------- discrete schedules, index input

def ddpm_alphas_cumprod(N, beta_0=1e-4, beta_1=0.02):
    betas = torch.linspace(beta_0, beta_1, N, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


class GaussianNoiseFromIndex(torch.nn.Module):
    """The exact noise prediction -sigma_t grad log p_t of Gaussian data N(mu, s^2 I) under a discrete VP schedule,
    from the DDPM step input alone: t N = index N / scale + 1, and log alpha linear between the nodes k = t N
    (k = 0: log alpha = 0; k >= 1: log(alphas_cumprod[k - 1]) / 2)."""

    def __init__(self, alphas_cumprod, mu, s, scale):
        super().__init__()
        self.dim = len(mu)
        self.N = alphas_cumprod.numel()
        self.scale = float(scale)
        self.register_buffer("nodes", torch.cat([torch.zeros(1, dtype=torch.float64),
                                                 0.5 * torch.log(alphas_cumprod.to(torch.float64))]))
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float64))
        self.s2 = float(s) ** 2
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)  # float64 type

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        position = index * (self.N / self.scale) + 1.0  # t N
        k = torch.clamp(torch.floor(position), 0, self.N - 1).long()
        low = self.nodes[k]
        log_alpha = low + (position - k.to(position.dtype)) * (self.nodes[k + 1] - low)
        alpha = torch.exp(log_alpha).unsqueeze(1)
        sigma2 = -torch.expm1(2.0 * log_alpha).unsqueeze(1)
        score = -(x - alpha * self.mu) / (alpha * alpha * self.s2 + sigma2)
        return -torch.sqrt(sigma2) * score


class Echo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(1).expand_as(x).clone() + 0.0 * x


GAUSS_MU, GAUSS_S = [1.5, -0.75], 0.6
with open(os.path.join(out_dir, "gaussian.json"), "w") as f:
    json.dump({"weights": [1.0], "means": [GAUSS_MU],
               "covariances": [[[GAUSS_S ** 2, 0.0], [0.0, GAUSS_S ** 2]]]}, f)
ddpm = ddpm_alphas_cumprod(1000)
short = ddpm_alphas_cumprod(40, 1e-3, 0.2)
for name, a in (("ddpm_alphas_cumprod.txt", ddpm), ("short_alphas_cumprod.txt", short)):
    with open(os.path.join(out_dir, name), "w") as f:
        f.write("\n".join(repr(v) for v in a.tolist()) + "\n")
DDPM_SDE = {"sde": "vp", "schedule": "discrete", "alphas-cumprod": ddpm}
save_score_module(GaussianNoiseFromIndex(ddpm, GAUSS_MU, GAUSS_S, 1000), os.path.join(out_dir, "gauss_ddpm_index.pt"),
                  sde=DDPM_SDE, parameterization="noise", time_input="index", dim=2)
save_score_module(GaussianNoiseFromIndex(short, GAUSS_MU, GAUSS_S, 1000), os.path.join(out_dir, "gauss_short_index.pt"),
                  sde={"sde": "vp", "alphas_cumprod": short}, parameterization="noise", time_input="index",
                  index_scale=1000, dim=2)
save_score_module(Echo(), os.path.join(out_dir, "echo_index.pt"), sde=DDPM_SDE, parameterization="data",
                  time_input="index", dim=2)

# ---------------------------------------------------------------------------------------- image-shaped modules

class ConvImage(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 2, 3, padding=1)
        self.dim = 32

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.c1(x) + t.reshape(-1, 1, 1, 1))
        return self.c2(h)


conv = ConvImage()
save_score_module(conv, os.path.join(out_dir, "conv_image.pt"), sde=VP, parameterization="noise", shape=(2, 4, 4))
save_score_module(conv, os.path.join(out_dir, "conv_image_wrong.pt"), sde=VP, parameterization="noise",
                  shape=(4, 2, 4))
torch.jit.save(torch.jit.script(conv), os.path.join(out_dir, "bad_shape_meta.pt"),
               _extra_files={"scoresde.json": json.dumps({"dim": 32, "parameterization": "noise", "sde": VP,
                                                          "shape": [3, 3]})})
loaded = torch.jit.load(os.path.join(out_dir, "conv_image.pt"))
x = torch.randn(5, 32, dtype=torch.float64)
t = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)
with torch.no_grad():
    out = loaded(x.to(torch.float32).view(5, 2, 4, 4), t.to(torch.float32)).to(torch.float64).reshape(5, 32)
alpha, sigma = vp_coefficients(t)
expected["conv_image.pt"] = {"x": x.tolist(), "t": t.tolist(), "output": out.tolist(),
                             "score": score_of("noise", out, x, alpha, sigma).tolist()}

with open(os.path.join(out_dir, "expected.json"), "w") as f:
    json.dump(expected, f)
assert math.isfinite(sum(sum(r) for r in expected["noise_vp.pt"]["score"]))
