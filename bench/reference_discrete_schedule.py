#!/usr/bin/python3
"""DPM-Solver's discrete-time noise schedule, evaluated by its own code: the golden file of the discrete schedule
(tests/data/golden/discrete_schedule.json, read by tests/test_sde.cpp and tests/test_torchscript.cpp).

Imports NoiseScheduleVP and model_wrapper from dpm_solver_pytorch.py of the checkout named on the command line
(nothing of theirs is copied here) and evaluates, in float64 (torch's default dtype set to float64, so that its
t_array is not rounded to float32), for each schedule below:

  times         1/N, every node t_n = (n + 1) / N of a few, midpoints of segments and 40 uniform draws in [1/N, 1]
  log_alpha     NoiseScheduleVP.marginal_log_mean_coeff(t)
  alpha         marginal_alpha(t),  sigma  marginal_std(t),  lambda  marginal_lambda(t)
  lambdas       the lambda of 24 times evenly spread in [1/N, 1] ...
  inverse       ... and inverse_lambda(lambda), the time back
  model_input   the time model_wrapper passes to a discrete-time model, (t - 1/N) * 1000 (an echo model
                returns it)

Schedules (alphas_cumprod, written into the file in full):

  ddpm_linear_1000  DDPM (Ho et al. 2020): betas = linspace(1e-4, 0.02, 1000), alphas_cumprod = cumprod(1 - betas)
  short_8           alphas_cumprod_n = exp(-0.12 (n + 1)^2), n = 0..7 (long segments)

Both keep lambda_N above DPM-Solver's clip at -5.1 (numerical_clip_alpha), which scoresde does not apply.

Regenerate (from the repository root, DIR a checkout of LuChengTHU/dpm-solver):

  /usr/bin/python3 bench/reference_discrete_schedule.py --dpm-solver DIR --out tests/data/golden/discrete_schedule.json
"""

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import torch


def load(path):
    spec = importlib.util.spec_from_file_location("dpm_solver_pytorch", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["dpm_solver_pytorch"] = module
    spec.loader.exec_module(module)
    return module


def schedules():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    n = torch.arange(8, dtype=torch.float64)
    return {
        "ddpm_linear_1000": torch.cumprod(1.0 - betas, dim=0),
        "short_8": torch.exp(-0.12 * (n + 1.0) ** 2),
    }


def evaluate(dpm, alphas_cumprod):
    ns = dpm.NoiseScheduleVP("discrete", alphas_cumprod=alphas_cumprod, dtype=torch.float64)
    N = alphas_cumprod.numel()
    assert ns.total_N == N, "DPM-Solver clipped the schedule (lambda below -5.1); choose another"
    gen = torch.Generator().manual_seed(20261207)
    nodes = [1, 2, N // 3, N // 2, N - 1, N]
    times = [k / N for k in nodes]
    times += [(k + 0.5) / N for k in (1, N // 4, N - 2)]
    times += (1.0 / N + (1.0 - 1.0 / N) * torch.rand(40, generator=gen, dtype=torch.float64)).tolist()
    times += [1.0 / N + 1e-9, 1.0 - 1e-9]
    t = torch.tensor(sorted(times), dtype=torch.float64)

    def echo(x, t_input):
        return t_input.reshape(-1, 1).expand_as(x)

    model_fn = dpm.model_wrapper(echo, ns, model_type="noise")
    model_input = model_fn(torch.zeros(t.numel(), 1, dtype=torch.float64), t)[:, 0]
    lambda_times = torch.linspace(1.0 / N, 1.0, 24, dtype=torch.float64)
    lambdas = ns.marginal_lambda(lambda_times)
    return {
        "alphas_cumprod": alphas_cumprod.tolist(),
        "times": t.tolist(),
        "log_alpha": ns.marginal_log_mean_coeff(t).tolist(),
        "alpha": ns.marginal_alpha(t).tolist(),
        "sigma": ns.marginal_std(t).tolist(),
        "lambda": ns.marginal_lambda(t).tolist(),
        "model_input": model_input.tolist(),
        "lambdas": lambdas.tolist(),
        "inverse": ns.inverse_lambda(lambdas).tolist(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dpm-solver", required=True, help="checkout of LuChengTHU/dpm-solver")
    parser.add_argument("--out", default="tests/data/golden/discrete_schedule.json")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    path = os.path.join(args.dpm_solver, "dpm_solver_pytorch.py")
    dpm = load(path)
    try:
        commit = subprocess.run(["git", "-C", args.dpm_solver, "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "description": "DPM-Solver's NoiseScheduleVP('discrete') and model_wrapper evaluated by its own code in "
                       "float64; written by bench/reference_discrete_schedule.py",
        "repository": "LuChengTHU/dpm-solver",
        "commit": commit,
        "sha256": {"dpm_solver_pytorch.py": sha},
        "torch": torch.__version__,
        "schedules": {name: evaluate(dpm, a) for name, a in schedules().items()},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
