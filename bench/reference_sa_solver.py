#!/usr/bin/python3
"""The authors' SA-Solver on the golden problem of bench/reference_samplers.py: golden files for `sa_solver`.

Imports sa_solver.py from a checkout of scxue/SA-Solver (the path given; nothing of it is copied here) and runs its
SASolver(algorithm_type="data_prediction").sample(mode="few_steps", pc_mode="PEC") in float64 on the golden problem
(mixture, VP SDE, latents and grids of tests/data/golden, read from there), with a constant tau and predictor order p,
corrector order p + 1, on scoresde's own noise: its torch.randn_like returns, at its (k + 1)-th call, step k's
(W(t_k) - W(t_{k+1})) / sqrt(t_k - t_{k+1}) from `scoresde brownian` with the case's options (its first call, before
the first step, is not used by the sampler). Its model is the exact noise prediction eps = -sigma_t score.

The authors lower the orders on the last steps of every grid; scoresde, with --lower-order-final on, on grids of
fewer than 10 steps: so the cases run on the 6- and 8-step grids. Their few-steps mode takes the last step with
tau = 0 and no corrector: scoresde's --denoise on (the cases' options replace the manifest's common --denoise off).

Adds the cases to tests/data/golden/manifest.json (replacing earlier sa_solver cases) and writes their outputs:

  /usr/bin/python3 bench/reference_sa_solver.py --sa-solver DIR --scoresde build/release/scoresde \\
      --golden tests/data/golden
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_samplers as rs  # noqa: E402  the golden problem and scoresde's noise

GRIDS = ["logsnr6", "karras6", "irregular8"]
TAUS = (1.0, 0.5, 0.0)
ORDERS = (1, 2, 3)
TREE = ["--noise", "brownian_tree", "--seed", "7"]


class StepNormalsAfterFirst:
    """torch.randn_like for SASolver.sample: zeros at the first call (before its first step, unused), then step k's
    normal at call k + 1 (zeros where scoresde draws nothing: the last step, taken with tau = 0)."""

    def __init__(self, noise, steps):
        self.noise, self.steps, self.calls = noise, steps, 0

    def __call__(self, x):
        k, self.calls = self.calls - 1, self.calls + 1
        z = self.noise.step_normal(k) if 0 <= k < self.steps else None
        return torch.zeros_like(x) if z is None else z


def run_sa_solver(module, problem, noise, tau, order):
    ns = module.NoiseScheduleVP("linear", continuous_beta_0=rs.BETA_MIN, continuous_beta_1=rs.BETA_MAX,
                                dtype=torch.float64)
    solver = module.SASolver(problem.noise_fn, ns, algorithm_type="data_prediction")
    grid = problem.grid_tensor()
    solver.get_time_steps = lambda **kwargs: grid
    steps = len(problem.grid) - 1
    original = torch.randn_like
    torch.randn_like = StepNormalsAfterFirst(noise, steps) if noise is not None else (lambda x: torch.zeros_like(x))
    try:
        return solver.sample(mode="few_steps", x=problem.x0.clone(), tau=lambda t: tau, steps=steps,
                             t_start=problem.grid[0], t_end=problem.grid[-1], skip_type="time",
                             predictor_order=order, corrector_order=order + 1, pc_mode="PEC")
    finally:
        torch.randn_like = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sa-solver", required=True, help="checkout of scxue/SA-Solver")
    parser.add_argument("--scoresde", required=True, help="scoresde binary (its noise: scoresde brownian)")
    parser.add_argument("--golden", required=True, help="the golden directory (tests/data/golden)")
    args = parser.parse_args()

    rs._stub_if_missing("tqdm", tqdm=lambda it, *a, **k: it)
    module = rs._load("sa_solver", os.path.join(args.sa_solver, "sa_solver.py"))
    manifest_path = os.path.join(args.golden, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    mix = rs.Mixture(manifest_data(args.golden, manifest))
    x0 = torch.from_numpy(np.load(os.path.join(args.golden, manifest["latents"])))
    grids = {g["name"]: g for g in manifest["grids"]}

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for gname in GRIDS:
            grid_file = os.path.join(args.golden, grids[gname]["file"])
            grid = rs.read_grid(grid_file)
            for tau in TAUS:
                for order in ORDERS:
                    sampler = ["--sampler", "sa_solver", "--order", str(order), "--tau", repr(tau)]
                    options = sampler + ["--denoise", "on"] + (TREE if tau > 0 else [])
                    noise = rs.ScoresdeNoise(args.scoresde, sampler + TREE, grid_file, grid, x0.shape[0],
                                             x0.shape[1], tmp) if tau > 0 else None
                    problem = rs.Problem(mix, grid, x0)
                    x = run_sa_solver(module, problem, noise, tau, order)
                    name = f"sa_solver_o{order}_tau{tau:g}"
                    expected = f"{gname}/{name}.npy"
                    rs.save_npy(os.path.join(args.golden, expected), x)
                    cases.append({"name": name, "grid": gname, "options": options, "expected": expected,
                                  "reference": f"SA-Solver SASolver(algorithm_type='data_prediction').sample("
                                               f"mode='few_steps', tau={tau:g}, predictor_order={order}, "
                                               f"corrector_order={order + 1}, pc_mode='PEC')",
                                  "order": order + 1 if tau == 0 else 1, "cross_checks": {}})
                    print(f"{gname} {name}: |x| max {float(x.abs().max()):.3f}")

    manifest["cases"] = [c for c in manifest["cases"] if not c["name"].startswith("sa_solver")] + cases
    root = args.sa_solver
    commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    manifest["repositories"]["sa-solver"] = {
        "repository": "scxue/SA-Solver", "commit": commit or "unknown (not a git checkout)",
        "sha256": {"sa_solver.py": hashlib.sha256(open(os.path.join(root, "sa_solver.py"), "rb").read()).hexdigest()}}
    with open(manifest_path, "w") as f:
        f.write(rs.manifest_text(manifest))
    print(f"wrote {len(cases)} sa_solver cases to {manifest_path}")


def manifest_data(golden, manifest):
    with open(os.path.join(golden, manifest["data"])) as f:
        return json.load(f)


if __name__ == "__main__":
    main()
