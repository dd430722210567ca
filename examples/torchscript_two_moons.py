#!/usr/bin/python3
"""Trains a small score network on two moons in PyTorch and exports it for scoresde (docs/torchscript.md).

    /usr/bin/python3 examples/torchscript_two_moons.py --out moons.pt [--iterations 4000] [--seed 0]

The data are scoresde's two_moons (models/datasets.hpp: sklearn's make_moons with noise 0.1, scaled by 2 and
shifted by (-1, -0.2)), standardised to zero mean and unit variance per coordinate. The network is scoresde's MLP
written in PyTorch (ScoreMlp of scripts/scoresde_torch.py: 16 Gaussian Fourier features of t, two hidden layers of
128 SiLU units, float32), trained by denoising score matching under the VP SDE (linear beta from 0.1 to 20) to
predict the noise z of x_t = alpha_t x_0 + sigma_t z, t uniform in [1e-3, 1] (Song et al. 2021, eq. 7 with
lambda(t) = sigma_t^2), Adam with a cosine learning-rate decay and an exponential moving average of the weights
(what is saved). One thread; about a minute on one core of a 2020s x86-64 CPU.

The module is saved with save_score_module: the SDE, the noise parameterisation and the data scaling go into its
scoresde.json, and the MLP's architecture under "mlp", so that `scripts/scoresde_torch.py pt-to-ckpt` turns it into
a checkpoint of scoresde's own MLP.
"""
import argparse
import copy
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from scoresde_torch import ScoreMlp, save_score_module  # noqa: E402

BETA_MIN, BETA_MAX, EPS = 0.1, 20.0, 1e-3


def two_moons(n, generator):
    """scoresde's two_moons: each point on the upper or the lower moon with probability 1/2 at a uniform angle,
    plus N(0, 0.1^2 I) noise, then times 2 minus (1, 0.2)."""
    upper = torch.rand(n, generator=generator, dtype=torch.float64) <= 0.5
    theta = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    a = torch.where(upper, torch.cos(theta), 1.0 - torch.cos(theta))
    b = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    x = torch.stack([a, b], dim=1) + 0.1 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return 2.0 * x - torch.tensor([1.0, 0.2], dtype=torch.float64)


def vp_alpha_sigma(t):
    log_alpha = -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="moons.pt")
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    data = two_moons(100_000, gen)
    mean, scale = data.mean(dim=0), data.std(dim=0)
    y = ((data - mean) / scale).to(torch.float32)

    net = ScoreMlp(dim=2, hidden=(128, 128), time_embedding="fourier", fourier_features=16, fourier_scale=4.0)
    ema = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.iterations)
    start = time.time()
    for it in range(1, args.iterations + 1):
        x0 = y[torch.randint(0, y.shape[0], (args.batch_size,), generator=gen)]
        t = EPS + (1.0 - EPS) * torch.rand(args.batch_size, generator=gen, dtype=torch.float64)
        alpha, sigma = vp_alpha_sigma(t)
        z = torch.randn(args.batch_size, 2, generator=gen)
        xt = alpha[:, None].float() * x0 + sigma[:, None].float() * z
        loss = ((net(xt, t.float()) - z) ** 2).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(0.999, (1 + it) / (10 + it))
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(p, alpha=1 - decay)
        if it % 1000 == 0 or it == args.iterations:
            print(f"iteration {it}: loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)

    save_score_module(ema, args.out,
                      sde={"sde": "vp", "schedule": "linear", "beta-min": BETA_MIN, "beta-max": BETA_MAX},
                      parameterization="noise", scaling={"mean": mean.tolist(), "scale": scale.tolist()},
                      extra={"mlp": ema.architecture(time_input="t", parameterization="noise")})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
