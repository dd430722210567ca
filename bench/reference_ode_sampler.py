#!/usr/bin/python3
"""The reference's probability-flow sampler itself, timed on eight_gaussians: score_sde_pytorch's
sampling.get_ode_sampler (SciPy's solve_ivp, RK45, one controller for the whole flattened batch), imported from the
checkout named by --reference, on the VP SDE (beta 0.1..20, T = 1, eps = 1e-3) with the exact mixture score.

  model    the exact eight_gaussians score (reference_pytorch.ExactScore, float32 as the sampler casts its states)
           handed to the reference as the noise prediction it expects, -std_t s(x, t) with t = labels / 999
           (models/utils.get_score_fn, continuous VP: score = -model(x, 999 t) / std_t); the points are (n, 2, 1, 1)
           tensors, the image shape the reference's score function broadcasts over
  latents  --seed's N(0, I) draws (torch, float64), or those of --latents FILE.npy ((n, 2), e.g. scoresde's prior
           draws), passed as the sampler's z
  result   the sampler's (samples, nfe): nfe counts SciPy's evaluations of the whole batch, so every sample takes
           part in all of them
Times are wall clock (time.perf_counter) around the sampler call, best of --repeats after one warm-up run, on
--threads torch threads. Prints one JSON line per run. Example (docs/benchmarks.md):

  /usr/bin/python3 bench/reference_ode_sampler.py --reference /tmp/score_sde_pytorch -n 10000 --threads 1
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_pytorch import BETA_MAX, BETA_MIN, EPS, ExactScore  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="checkout of yang-song/score_sde_pytorch")
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--tolerance", type=float, default=1e-5, help="rtol = atol (the reference's default 1e-5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latents", help="start from these points (.npy, (n, 2)) instead of --seed's draws")
    parser.add_argument("--out", help="write the samples of the last run here (.npy, (n, 2))")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.reference))
    import sampling  # noqa: E402  (the reference's own modules)
    import sde_lib  # noqa: E402

    sde = sde_lib.VPSDE(beta_min=BETA_MIN, beta_max=BETA_MAX, N=1000)
    score = ExactScore(torch.float32)

    class NoisePrediction(torch.nn.Module):
        def forward(self, x, labels):
            t = labels / 999.0
            std = sde.marginal_prob(torch.zeros_like(x), t)[1]
            s = score(x.reshape(x.shape[0], 2), t.to(torch.float32))
            return (-std[:, None] * s).reshape(x.shape)

    model = NoisePrediction()
    shape = (args.n, 2, 1, 1)
    sampler = sampling.get_ode_sampler(sde, shape, lambda x: x, rtol=args.tolerance, atol=args.tolerance,
                                       method="RK45", eps=EPS, device="cpu")
    if args.latents:
        import numpy as np
        z = torch.from_numpy(np.load(args.latents).astype(np.float64)).reshape(shape)
    else:
        generator = torch.Generator().manual_seed(args.seed)
        z = torch.randn(shape, dtype=torch.float64, generator=generator)
    try:
        commit = subprocess.run(["git", "-C", args.reference, "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "unknown"
    best = None
    for r in range(args.repeats + 1):  # r = 0 is the warm-up
        start = time.perf_counter()
        x, nfe = sampler(model, z=z.clone())
        seconds = time.perf_counter() - start
        if r == 0:
            continue
        best = seconds if best is None else min(best, seconds)
        print(json.dumps({"job": "ode_rk45", "reference_commit": commit, "n": args.n, "tolerance": args.tolerance,
                          "threads": args.threads, "run": r, "wall_seconds": seconds, "nfe": nfe,
                          "torch": torch.__version__}), flush=True)
    print(json.dumps({"job": "ode_rk45", "best_wall_seconds": best, "nfe": nfe}), flush=True)
    if args.out:
        import numpy as np
        np.save(args.out, x.reshape(args.n, 2).numpy().astype(np.float64))


if __name__ == "__main__":
    main()
