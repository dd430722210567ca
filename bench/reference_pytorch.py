#!/usr/bin/python3
"""PyTorch CPU baseline for scoresde's sampling benchmarks (bench/run_benchmarks.sh, docs/benchmarks.md).

Written from scratch to do the same work as the reference score_sde_pytorch sampler does for one job: draw n
samples of eight_gaussians from the VP SDE (beta 0.1..20, T = 1, eps = 1e-3) with the exact score, batch-wide
torch operations at every step, no autograd.

  prior        x ~ N(0, I), shape (n, 2)
  grid         timesteps = linspace(T, eps, N), dt = -1 / N  (as the reference: N points, the last one eps)
  score        eight_gaussians diffused by the VP kernel: p_t = (1/8) sum_k N(alpha_t mu_k, v_t I),
               v_t = alpha_t^2 0.25 + 1 - alpha_t^2, log alpha_t = -t^2 (b1 - b0) / 4 - t b0 / 2;
               s(x) = sum_k r_k (alpha_t mu_k - x) / v_t, r = softmax over k by logsumexp
               (--score matmul, the default and faster, or broadcast: see ExactScore)
  em           x_mean = x + [f(t) x - g(t)^2 s] dt,  x = x_mean + g(t) sqrt(-dt) z,  f = -beta_t / 2, g^2 = beta_t
  pc           at every t: one Langevin corrector step, then the reverse-diffusion predictor
               corrector  eps = 2 alpha_i (snr |z| / |s|)^2 with |z|, |s| the batch means of the per-sample norms,
                          alpha_i = 1 - beta_i, i = floor(t (N - 1) / T);  x = x + eps s + sqrt(2 eps) z
               predictor  beta_i = discrete betas linspace(b0 / N, b1 / N, N);
                          x_mean = x - [(sqrt(1 - beta_i) - 1) x - beta_i s],  x = x_mean + sqrt(beta_i) z
  result       x_mean after the last step (the reference's noise-free denoising step)

Times are wall clock (time.perf_counter) around the sampling loop only, best of --repeats runs after one warm-up
run; --json also records the smallest process CPU time (time.process_time) of the timed runs. Examples:

  /usr/bin/python3 bench/reference_pytorch.py                          # EM, float64 and float32, 1 thread
  /usr/bin/python3 bench/reference_pytorch.py --sampler em pc --threads 2
  /usr/bin/python3 bench/reference_pytorch.py --sampler pc --dtype float64 --out /tmp/pc.npy
"""

import argparse
import json
import math
import platform
import sys
import time

import torch

BETA_MIN, BETA_MAX, T, EPS = 0.1, 20.0, 1.0, 1e-3
SNR = 0.16


def eight_gaussian_means(dtype):
    angles = 2.0 * math.pi * torch.arange(8, dtype=dtype) / 8.0
    return 4.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (8, 2)


class ExactScore:
    """Exact score of eight_gaussians under the VP marginal, for a batch x (n, 2) and per-sample times t (n,).

    form "matmul" (default, the faster): the component logits are expanded as
        -|x - a mu_k|^2 / (2 v) = [a x.mu_k - a^2 |mu_k|^2 / 2] / v - |x|^2 / (2 v),
    the last term dropped (it is the same for every k and cancels), so that the batch work is one (n, 2) x (2, 8)
    and one (n, 8) x (8, 2) product:  s = (a sum_k r_k mu_k - x) / v.
    form "broadcast": the direct (n, 8, 2) differences a mu_k - x, as a straightforward port would write it.
    Both take responsibilities r = exp(logits - logsumexp(logits)) over k.
    """

    def __init__(self, dtype, form="matmul"):
        self.means = eight_gaussian_means(dtype)  # (8, 2)
        self.means_t = self.means.t().contiguous()  # (2, 8)
        self.half_sq_norms = 0.5 * (self.means * self.means).sum(dim=1)  # (8,)
        self.log_weights = torch.full((8,), -math.log(8.0), dtype=dtype)
        self.form = form

    def __call__(self, x, t):
        log_alpha = -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN  # (n,)
        alpha = torch.exp(log_alpha)[:, None]  # (n, 1)
        alpha2 = alpha * alpha
        var = alpha2 * 0.25 + 1.0 - alpha2  # (n, 1)
        if self.form == "broadcast":
            diff = alpha[:, :, None] * self.means[None, :, :] - x[:, None, :]  # (n, 8, 2)
            logits = self.log_weights - 0.5 * (diff * diff).sum(dim=2) / var  # (n, 8)
            resp = torch.exp(logits - torch.logsumexp(logits, dim=1, keepdim=True))
            return (resp[:, :, None] * diff).sum(dim=1) / var
        logits = self.log_weights + (alpha * (x @ self.means_t) - alpha2 * self.half_sq_norms) / var  # (n, 8)
        resp = torch.exp(logits - torch.logsumexp(logits, dim=1, keepdim=True))
        return (alpha * (resp @ self.means) - x) / var


def vp_beta(t):
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def sample_em(score, n, steps, dtype, generator):
    x = torch.randn(n, 2, dtype=dtype, generator=generator)
    timesteps = torch.linspace(T, EPS, steps, dtype=dtype)
    dt = -1.0 / steps
    x_mean = x
    for i in range(steps):
        vec_t = torch.ones(n, dtype=dtype) * timesteps[i]
        beta_t = vp_beta(vec_t)[:, None]
        drift = -0.5 * beta_t * x - beta_t * score(x, vec_t)  # f x - g^2 s
        z = torch.randn(x.shape, dtype=dtype, generator=generator)
        x_mean = x + drift * dt
        x = x_mean + torch.sqrt(beta_t) * math.sqrt(-dt) * z
    return x_mean


def sample_pc(score, n, steps, dtype, generator):
    x = torch.randn(n, 2, dtype=dtype, generator=generator)
    timesteps = torch.linspace(T, EPS, steps, dtype=dtype)
    discrete_betas = torch.linspace(BETA_MIN / steps, BETA_MAX / steps, steps, dtype=dtype)
    alphas = 1.0 - discrete_betas
    x_mean = x
    for i in range(steps):
        vec_t = torch.ones(n, dtype=dtype) * timesteps[i]
        index = (vec_t * (steps - 1) / T).long()
        # Langevin corrector, one step, norms averaged over the batch.
        grad = score(x, vec_t)
        z = torch.randn(x.shape, dtype=dtype, generator=generator)
        grad_norm = torch.linalg.norm(grad.reshape(n, -1), dim=-1).mean()
        noise_norm = torch.linalg.norm(z.reshape(n, -1), dim=-1).mean()
        step_size = (SNR * noise_norm / grad_norm) ** 2 * 2.0 * alphas[index]  # (n,)
        x_mean = x + step_size[:, None] * grad
        x = x_mean + torch.sqrt(2.0 * step_size)[:, None] * z
        # Reverse-diffusion predictor on the DDPM discretisation.
        beta = discrete_betas[index][:, None]
        f = (torch.sqrt(1.0 - beta) - 1.0) * x
        rev_f = f - beta * score(x, vec_t)
        z = torch.randn(x.shape, dtype=dtype, generator=generator)
        x_mean = x - rev_f
        x = x_mean + torch.sqrt(beta) * z
    return x_mean


SAMPLERS = {"em": sample_em, "pc": sample_pc}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def time_job(sampler, n, steps, dtype_name, score_form, repeats, seed):
    dtype = DTYPES[dtype_name]
    score = ExactScore(dtype, score_form)
    fn = SAMPLERS[sampler]
    times, cpu_times, out = [], [], None
    with torch.inference_mode():
        for r in range(repeats + 1):  # run 0 is the warm-up
            generator = torch.Generator().manual_seed(seed)
            start, cpu_start = time.perf_counter(), time.process_time()
            out = fn(score, n, steps, dtype, generator)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if r > 0:
                times.append(elapsed)
                cpu_times.append(cpu)
    return times, cpu_times, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="samples (default 10000)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps N (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--sampler", nargs="+", choices=sorted(SAMPLERS), default=["em"],
                        help="em (Euler-Maruyama) and/or pc (reverse diffusion + Langevin); default em")
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["float64", "float32"],
                        help="default: float64 (as scoresde) and float32")
    parser.add_argument("--score", choices=["matmul", "broadcast"], default="matmul",
                        help="how the exact score is written in torch ops (default matmul, the faster)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up; best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="FILE.npy",
                        help="save the samples (n, 2) of the last job as .npy (needs numpy)")
    parser.add_argument("--json", metavar="FILE", help="append one JSON line per job to FILE")
    args = parser.parse_args()
    if args.n < 1 or args.steps < 2 or args.threads < 1 or args.repeats < 1:
        parser.error("--n, --threads and --repeats must be >= 1 and --steps >= 2")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(f"# PyTorch {torch.__version__} on {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, torch threads {torch.get_num_threads()}, "
          f"score {args.score}, n = {args.n}, N = {args.steps}, best of {args.repeats} after 1 warm-up")
    print(f"{'sampler':8} {'dtype':8} {'threads':>7} {'best s':>9} {'all runs s':>28} {'samples*steps/s':>16}")
    last = None
    for sampler in args.sampler:
        for dtype_name in args.dtype:
            times, cpu_times, out = time_job(sampler, args.n, args.steps, dtype_name, args.score, args.repeats, args.seed)
            best = min(times)
            rate = args.n * args.steps / best
            runs = " ".join(f"{t:.3f}" for t in times)
            print(f"{sampler:8} {dtype_name:8} {args.threads:>7} {best:9.3f} {runs:>28} {rate:16.3e}", flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"sampler": sampler, "dtype": dtype_name, "threads": args.threads,
                                        "score": args.score, "n": args.n, "steps": args.steps, "best_seconds": best,
                                        "seconds": times, "best_cpu_seconds": min(cpu_times),
                                        "torch": torch.__version__}) + "\n")
            last = out
    if args.out:
        import numpy as np
        np.save(args.out, last.to(torch.float64).numpy())
        print(f"# wrote {args.out}: samples of the last job ({args.sampler[-1]}, {args.dtype[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
