#!/usr/bin/python3
"""score_sde_pytorch's own samplers on the exact eight_gaussians score: the baseline of issue 15's goal 1.

Imports sampling.py and sde_lib.py from the score_sde_pytorch checkout given with --reference (nothing of theirs is
copied here) and times its get_pc_sampler on CPU:

  em   predictor EulerMaruyamaPredictor, corrector NoneCorrector
  pc   predictor ReverseDiffusionPredictor, corrector LangevinCorrector, snr 0.16, one corrector step

with sde_lib.VPSDE(beta_min=0.1, beta_max=20, N=steps), eps = 1e-3, continuous=True, denoise=True (the returned
sample is the last x_mean), samples of shape (n, 2, 1, 1) (the reference's score wrapper divides by
std[:, None, None, None], so a 2-D point is a 2-channel 1x1 image). The "model" handed to the sampler is the exact
mixture score written in bench/reference_pytorch.py (ExactScore, --score matmul or broadcast), returned as the
reference's networks return it for a VP SDE: model(x, 999 t) = -std_t * score(x, t), which get_score_fn turns back
into the score. Everything else (the time grid, the noise, the updates, the Langevin step size from batch-mean
norms) is the reference's code.

Wall time (time.perf_counter) around one call of the sampler, best of --repeats after one warm-up call; one JSON
line per job on stdout. Example:

  /usr/bin/python3 bench/reference_score_sde.py --reference /tmp/score_sde_pytorch --sampler em pc --threads 1
"""

import argparse
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_pytorch as rp  # noqa: E402  the exact mixture score (this project's code)

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class ExactScoreModel(torch.nn.Module):
    """The exact score in the reference's model convention for VP SDEs: output = -std_t * score."""

    def __init__(self, sde, dtype, form):
        super().__init__()
        self.sde = sde
        self.score = rp.ExactScore(dtype, form)

    def forward(self, x, labels):
        t = labels / 999.0
        n = x.shape[0]
        std = self.sde.marginal_prob(torch.zeros_like(x), t)[1]
        s = self.score(x.reshape(n, 2), t)
        return (-std[:, None] * s).reshape(x.shape)


def load_reference(path):
    if not os.path.isfile(os.path.join(path, "sampling.py")):
        print(f"reference_score_sde.py: --reference {path}: no sampling.py there; give the path of a "
              "score_sde_pytorch checkout (git clone https://github.com/yang-song/score_sde_pytorch)", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, os.path.abspath(path))
    import sampling  # noqa: E402
    import sde_lib  # noqa: E402
    return sampling, sde_lib


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="path of a score_sde_pytorch checkout")
    parser.add_argument("--sampler", nargs="+", default=["em", "pc"], choices=["em", "pc"])
    parser.add_argument("--dtype", nargs="+", default=["float64"], choices=sorted(DTYPES))
    parser.add_argument("--score", default="matmul", choices=["matmul", "broadcast"])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n < 1 or args.steps < 2 or args.threads < 1 or args.repeats < 1:
        print("reference_score_sde.py: --n, --threads and --repeats must be >= 1 and --steps >= 2", file=sys.stderr)
        sys.exit(2)

    sampling, sde_lib = load_reference(args.reference)
    torch.set_num_threads(args.threads)
    commit = os.popen(f"git -C {args.reference} rev-parse --short HEAD 2>/dev/null").read().strip()
    for sampler_name in args.sampler:
        for dtype_name in args.dtype:
            torch.set_default_dtype(DTYPES[dtype_name])
            sde = sde_lib.VPSDE(beta_min=rp.BETA_MIN, beta_max=rp.BETA_MAX, N=args.steps)
            if sampler_name == "em":
                predictor, corrector = sampling.EulerMaruyamaPredictor, sampling.NoneCorrector
            else:
                predictor, corrector = sampling.ReverseDiffusionPredictor, sampling.LangevinCorrector
            sampler = sampling.get_pc_sampler(sde, (args.n, 2, 1, 1), predictor, corrector, lambda x: x, snr=rp.SNR,
                                              n_steps=1, probability_flow=False, continuous=True, denoise=True,
                                              eps=rp.EPS, device="cpu")
            model = ExactScoreModel(sde, DTYPES[dtype_name], args.score)
            times, cpu_times, nfe = [], [], None
            for r in range(args.repeats + 1):  # run 0 is the warm-up
                torch.manual_seed(args.seed)
                start, cpu_start = time.perf_counter(), time.process_time()
                out, nfe = sampler(model)
                if r > 0:
                    times.append(time.perf_counter() - start)
                    cpu_times.append(time.process_time() - cpu_start)
            assert out.dtype == DTYPES[dtype_name] and torch.isfinite(out).all()
            print(json.dumps({"program": "score_sde_pytorch", "reference_commit": commit, "sampler": sampler_name,
                              "dtype": dtype_name, "score": args.score, "n": args.n, "steps": args.steps,
                              "threads": args.threads, "nfe": nfe, "best_s": min(times), "times_s": times,
                              "cpu_best_s": min(cpu_times), "torch": torch.__version__,
                              "python": platform.python_version()}), flush=True)


if __name__ == "__main__":
    main()
