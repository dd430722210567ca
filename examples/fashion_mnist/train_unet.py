#!/usr/bin/python3
"""Trains a small U-Net score model on Fashion-MNIST and exports it as TorchScript for scoresde (docs/images.md).

    nice -n 15 /usr/bin/python3 examples/fashion_mnist/train_unet.py --work-dir runs/fmnist_unet \
        --out assets/fashion_mnist/unet.pt [--max-minutes 60] [--seed 0]

Data: the 60,000 training images, pixels in [-1, 1] (p / 127.5 - 1), as scoresde's fashion_mnist. Objective:
denoising score matching under scoresde's VP SDE (linear beta from 0.1 to 20, T = 1) in the noise
parameterisation: x_t = alpha_t x_0 + sigma_t z, t uniform in [1e-3, 1], loss |eps_theta(x_t, t) - z|^2 / 784
(Ho et al. 2020, eq. 14; Song et al. 2021, eq. 7 with lambda(t) = sigma_t^2). Adam (learning rate 1e-3 after a
linear warm-up of 200 iterations, gradient norm clipped at 1), batch 64, and an exponential moving average of the
weights with decay min(0.998, (1 + k) / (10 + k)) at iteration k: the EMA is what is exported.

The network (UNet below): a sinusoidal embedding of 1000 t (32 frequencies) through a two-layer SiLU MLP to 128
features, added to every residual block; residual blocks (GroupNorm, SiLU, 3x3 convolution, twice) at three
resolutions, 28 x 28 (32 channels), 14 x 14 (64) and 7 x 7 (64, two blocks in the middle); strided convolutions
down, nearest-neighbour upsampling and concatenated skips up. About 0.47 M parameters.

Resumable: each iteration's minibatch, times and noise come from a generator seeded by (seed, iteration), and a
checkpoint (weights, EMA, optimiser, iteration, loss history, training seconds) is written to --work-dir every
--checkpoint-minutes and at the end; a run started again with the same --work-dir continues from it. Training stops
when the training time summed over all runs reaches --max-minutes (or after --iterations), so the number of
iterations depends on the machine: the JSON written beside the export records it. One thread (torch.set_num_threads).
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import fmnist_data  # noqa: E402
from scoresde_torch import save_score_module  # noqa: E402

BETA_MIN, BETA_MAX, EPS = 0.1, 20.0, 1e-3
TIME_FEATURES, EMBED = 32, 128


def vp_alpha_sigma(t):
    log_alpha = -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    return torch.exp(log_alpha), torch.sqrt(-torch.expm1(2.0 * log_alpha))


class ResBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(8, cin)
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.time = torch.nn.Linear(EMBED, cout)
        self.norm2 = torch.nn.GroupNorm(8, cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else torch.nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(torch.nn.Module):
    """eps_theta(x, t): x (n, 1, 28, 28) in the data's units, t (n,) the SDE's time; returns (n, 1, 28, 28)."""

    def __init__(self):
        super().__init__()
        half = TIME_FEATURES // 2
        self.register_buffer("frequencies", torch.exp(-math.log(10000.0) * torch.arange(half) / half))
        self.embed = torch.nn.Sequential(torch.nn.Linear(TIME_FEATURES, EMBED), torch.nn.SiLU(),
                                         torch.nn.Linear(EMBED, EMBED))
        self.conv_in = torch.nn.Conv2d(1, 32, 3, padding=1)
        self.down28 = ResBlock(32, 32)
        self.to14 = torch.nn.Conv2d(32, 32, 3, stride=2, padding=1)
        self.down14 = ResBlock(32, 64)
        self.to7 = torch.nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.mid1 = ResBlock(64, 64)
        self.mid2 = ResBlock(64, 64)
        self.up14 = ResBlock(128, 64)
        self.up28 = ResBlock(96, 32)
        self.norm_out = torch.nn.GroupNorm(8, 32)
        self.conv_out = torch.nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angle = 1000.0 * t.to(x.dtype)[:, None] * self.frequencies[None, :]
        emb = self.embed(torch.cat([torch.sin(angle), torch.cos(angle)], dim=1))
        h28 = self.down28(self.conv_in(x), emb)
        h14 = self.down14(self.to14(h28), emb)
        h = self.mid2(self.mid1(self.to7(h14), emb), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up14(torch.cat([h, h14], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up28(torch.cat([h, h28], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def batch(images, seed, iteration, batch_size):
    """The minibatch, times and noise of one iteration, from a generator keyed by (seed, iteration)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    x0 = images[torch.randint(0, images.shape[0], (batch_size,), generator=gen)]
    t = EPS + (1.0 - EPS) * torch.rand(batch_size, generator=gen, dtype=torch.float64)
    z = torch.randn(x0.shape, generator=gen)
    return x0, t, z


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", required=True, help="the checkpoint (training resumes from it)")
    parser.add_argument("--out", required=True, help="the TorchScript export (.pt); a .json is written beside")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="training time over all runs")
    parser.add_argument("--iterations", type=int, default=0, help="stop after this many (0: no limit)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--data-dir", default=fmnist_data.DEFAULT_DIR)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.work_dir, exist_ok=True)
    checkpoint_path = os.path.join(args.work_dir, "unet_checkpoint.pt")

    images = torch.from_numpy(fmnist_data.load("train", args.data_dir)[0]).unsqueeze(1)
    torch.manual_seed(args.seed)
    net = UNet()
    ema = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    iteration, seconds, history = 0, 0.0, []
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path)
        for key in ("seed", "batch_size", "lr"):
            if state["args"][key] != getattr(args, key):
                raise SystemExit(f"{checkpoint_path}: written with {key} = {state['args'][key]}; "
                                 f"use another --work-dir")
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        iteration, seconds, history = state["iteration"], state["seconds"], state["history"]
        print(f"resuming at iteration {iteration} ({seconds / 60:.1f} min trained)", flush=True)
    parameters = sum(p.numel() for p in net.parameters())
    print(f"U-Net with {parameters} parameters", flush=True)

    def save_checkpoint():
        tmp = checkpoint_path + ".tmp"
        torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "iteration": iteration, "seconds": seconds, "history": history, "args": vars(args)}, tmp)
        os.replace(tmp, checkpoint_path)

    last_checkpoint, window, window_n = time.time(), 0.0, 0
    while seconds < 60.0 * args.max_minutes and (args.iterations == 0 or iteration < args.iterations):
        began = time.time()
        x0, t, z = batch(images, args.seed, iteration, args.batch_size)
        alpha, sigma = vp_alpha_sigma(t)
        xt = alpha.float()[:, None, None, None] * x0 + sigma.float()[:, None, None, None] * z
        loss = ((net(xt, t.float()) - z) ** 2).mean()
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (iteration + 1) / 200.0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        decay = min(0.998, (1.0 + iteration) / (10.0 + iteration))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(p, alpha=1.0 - decay)
        iteration += 1
        seconds += time.time() - began
        window += float(loss)
        window_n += 1
        if iteration % 50 == 0:
            history.append({"iteration": iteration, "loss": window / window_n, "seconds": round(seconds, 1)})
            print(f"iteration {iteration}: loss {window / window_n:.4f} ({seconds / 60:.1f} min)", flush=True)
            window, window_n = 0.0, 0
        if time.time() - last_checkpoint > 60.0 * args.checkpoint_minutes:
            save_checkpoint()
            last_checkpoint = time.time()
    save_checkpoint()

    ema.eval()
    extra = {"training": {"command": "/usr/bin/python3 examples/fashion_mnist/train_unet.py " + " ".join(sys.argv[1:]),
                          "iterations": iteration, "batch_size": args.batch_size, "seed": args.seed,
                          "train_seconds": round(seconds, 1), "parameters": parameters, "weights": "ema"}}
    save_score_module(ema, args.out, sde={"sde": "vp", "schedule": "linear", "beta-min": BETA_MIN,
                                          "beta-max": BETA_MAX},
                      parameterization="noise", shape=(1, 28, 28), extra=extra)
    record = dict(extra["training"])
    record.update({"network": "U-Net: 28x28 (32 channels), 14x14 (64), 7x7 (64); sinusoidal time embedding",
                   "objective": "denoising score matching, VP linear beta 0.1..20, noise prediction, t ~ U[1e-3, 1]",
                   "lr": args.lr, "max_minutes": args.max_minutes, "threads": 1, "torch": torch.__version__,
                   "history": history})
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} after {iteration} iterations ({seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
