#!/usr/bin/python3
"""PyTorch CPU baseline for scoresde's MLP score-network benchmarks (bench/run_mlp_benchmarks.sh,
docs/benchmarks.md, section "MLP score network").

The same network and loops as bench/bench_mlp.cpp, written the way a PyTorch user would write them:

  network   nn.Sequential(Linear(3, w), SiLU(), ..., Linear(w, 2)) on the input [x, t] (raw time appended to x,
            scoresde's --time-embedding raw and its .npz interchange layout), float32;
            nets 2-128-128-2 and 2-256-256-256-2
  SDE       VP, beta(t) = 0.1 + t (20 - 0.1), log alpha_t = -t^2 (b1 - b0) / 4 - t b0 / 2,
            sigma_t = sqrt(1 - alpha_t^2); score s = -net([x, t]) / sigma_t (noise parameterisation)
  train     one iteration = minibatch of B data points drawn with replacement, t ~ U(1e-5, 1), z ~ N(0, I),
            x_t = alpha_t x_0 + sigma_t z, loss = mean over batch and coordinates of (sigma_t s + z)^2
            (sigma^2 weighting, mean reduction), backward, clip_grad_norm_(1.0), torch.optim.Adam (lr 2e-3 with a
            linear warm-up over 100 steps, betas 0.9 / 0.999, eps 1e-8), then an EMA of the weights
            (rate min(0.999, (1 + k) / (10 + k))) under torch.no_grad()
  sample    Euler-Maruyama on the reverse VP SDE under torch.no_grad(): x ~ N(0, I), grid from T = 1 to
            eps = 1e-3 in N steps of h, x <- x - [f(x, t) - g(t)^2 s(x, t)] h + g(t) sqrt(h) z, the last step
            without noise; sample evaluations per second = B N / time
  forward   net(input) under torch.no_grad() on a B x 3 input
  sgemm     the network's products alone, torch.nn.functional.linear(h_l, W_l) for every layer (B x in by
            in x out, no bias or activation): the BLAS's matrix-product rate on these shapes

Times are wall clock (time.perf_counter): training, the mean of a block of iterations that takes at least
--min-time seconds; sampling, one whole run of N steps; forward, the mean of a block of calls. Best of --repeats
blocks after one warm-up block. torch.set_num_threads(--threads). The training data are two_moons drawn by the
script (the data do not change the work). Examples:

  /usr/bin/python3 bench/reference_mlp_pytorch.py                        # everything, 1 thread
  /usr/bin/python3 bench/reference_mlp_pytorch.py --job train --net 2-128-128-2 --batch 512 --threads 2
  /usr/bin/python3 bench/reference_mlp_pytorch.py --show-config          # version, BLAS, build
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import torch
from torch import nn

BETA_MIN, BETA_MAX, T, SAMPLE_EPS, TRAIN_EPS = 0.1, 20.0, 1.0, 1e-3, 1e-5
NETS = {"2-128-128-2": [128, 128], "2-256-256-256-2": [256, 256, 256]}


def make_net(hidden, dim=2):
    layers, width = [], dim + 1
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    layers.append(nn.Linear(width, dim))
    return nn.Sequential(*layers)


def log_alpha(t):
    return -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN


def sigma(t):
    return torch.sqrt(1.0 - torch.exp(2.0 * log_alpha(t)))


def beta(t):
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def two_moons(n, gen):
    u = torch.rand(n, generator=gen) * math.pi
    upper = torch.rand(n, generator=gen) < 0.5
    x = torch.where(upper, torch.cos(u), 1.0 - torch.cos(u))
    y = torch.where(upper, torch.sin(u), 0.5 - torch.sin(u))
    return torch.stack([x, y], dim=1) + 0.05 * torch.randn(n, 2, generator=gen)


class Training:
    def __init__(self, hidden, batch):
        self.net = make_net(hidden)
        self.ema = [p.detach().clone() for p in self.net.parameters()]
        self.opt = torch.optim.Adam(self.net.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
        self.data = two_moons(100000, torch.Generator().manual_seed(0))
        self.batch = batch
        self.step_count = 0

    def step(self):
        k = self.step_count
        for group in self.opt.param_groups:
            group["lr"] = 2e-3 * min(1.0, (k + 1) / 100)
        x0 = self.data[torch.randint(0, self.data.shape[0], (self.batch,))]
        t = TRAIN_EPS + (T - TRAIN_EPS) * torch.rand(self.batch)
        z = torch.randn_like(x0)
        alpha, std = torch.exp(log_alpha(t))[:, None], sigma(t)[:, None]
        xt = alpha * x0 + std * z
        score = -self.net(torch.cat([xt, t[:, None]], dim=1)) / std
        loss = torch.mean((score * std + z) ** 2)
        self.opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        decay = min(0.999, (1 + k + 1) / (10 + k + 1))
        with torch.no_grad():
            for e, p in zip(self.ema, self.net.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        self.step_count += 1
        return loss


@torch.no_grad()
def sample(net, n, steps):
    x = torch.randn(n, 2)
    ts = torch.linspace(T, SAMPLE_EPS, steps + 1)
    h = (T - SAMPLE_EPS) / steps
    for i in range(steps):
        t = ts[i]
        vec_t = torch.full((n, 1), float(t))
        score = -net(torch.cat([x, vec_t], dim=1)) / sigma(t)
        b = beta(t)
        drift = -0.5 * b * x - b * score  # f - g^2 s of the reverse SDE
        x_mean = x - drift * h
        x = x_mean + torch.sqrt(b * h) * torch.randn_like(x) if i + 1 < steps else x_mean
    return x


def timed_block(fn, min_time):
    """Mean seconds per call over a block of calls lasting at least min_time."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / calls


def blas_library():
    """The BLAS shared object loaded into this process (Debian's libblas.so.3 alternative)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none found"
    except OSError:
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", nargs="+", default=["train", "sample", "forward", "sgemm"],
                        choices=["train", "sample", "forward", "sgemm"])
    parser.add_argument("--net", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--batch", nargs="+", type=int, default=[512, 10000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="Euler-Maruyama steps per sampling run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per timed block (train, forward)")
    parser.add_argument("--json", help="append one JSON line per result to this file")
    parser.add_argument("--show-config", action="store_true", help="print torch.__config__.show() and exit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.show_config:
        print(f"torch {torch.__version__}, Python {platform.python_version()}, BLAS loaded: {blas_library()}")
        print(torch.__config__.show())
        print(torch.__config__.parallel_info())
        return
    for name in args.net:
        hidden = NETS[name]
        flops = 2 * sum(a * b for a, b in zip([3] + hidden, hidden + [2]))
        for batch in args.batch:
            for job in args.job:
                if job == "train":
                    tr = Training(hidden, batch)
                    fn, per_call = tr.step, 1.0
                elif job == "sample":
                    net = make_net(hidden)
                    fn, per_call = (lambda: sample(net, batch, args.steps)), float(batch * args.steps)
                elif job == "sgemm":
                    widths = [3] + hidden + [2]
                    hs = [torch.randn(batch, a) for a in widths[:-1]]
                    ws = [torch.randn(b, a) for a, b in zip(widths[:-1], widths[1:])]

                    def fn():
                        for h, w in zip(hs, ws):
                            nn.functional.linear(h, w)

                    per_call = float(batch)
                else:
                    net = make_net(hidden)
                    inp = torch.randn(batch, 3)

                    def fn():
                        with torch.no_grad():
                            return net(inp)

                    per_call = float(batch)
                min_time = 0.0 if job == "sample" else args.min_time
                timed_block(fn, min_time)  # warm-up
                times = [timed_block(fn, min_time) for _ in range(args.repeats)]
                best = min(times)
                row = {"job": job, "net": name, "batch": batch, "threads": args.threads, "best_seconds": best,
                       "times": times, "torch": torch.__version__, "blas": blas_library()}
                if job == "train":
                    row["iterations_per_s"] = 1.0 / best
                    row["gflops"] = (3 * flops - 2 * 3 * hidden[0]) * batch / best / 1e9
                else:
                    row["sample_evals_per_s"] = per_call / best
                    row["gflops"] = flops * per_call / best / 1e9
                rate = row.get("iterations_per_s") or row["sample_evals_per_s"]
                unit = "it/s" if job == "train" else "sample-evals/s"
                print(f"{job:8s} {name:16s} batch {batch:6d} threads {args.threads}: {best * 1e3:9.3f} ms, "
                      f"{rate:.4g} {unit}, {row['gflops']:.1f} GFLOP/s", file=sys.stderr)
                if args.json:
                    with open(args.json, "a") as out:
                        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
