#!/usr/bin/python3
"""The authors' few-step samplers on an exact Gaussian-mixture score: the golden files of tests/data/golden/.

Runs, in float64, from given latents on given time grids, the samplers of the reference code (imported from the
checkouts named on the command line; nothing of theirs is copied here):

  dpm-solver   DPM_Solver (dpm_solver_pytorch.py): algorithm_type dpmsolver and dpmsolver++, method multistep and
               singlestep_fixed, orders 1-3, solver_type dpmsolver and taylor
  UniPC        UniPC (uni_pc.py): data prediction, variant bh1 and bh2, orders 1-3, the corrector on or off
  k-diffusion  sample_euler, sample_heun, sample_dpm_2, sample_lms (orders 1-4), sample_dpmpp_2m,
               sample_dpmpp_2m_sde (eta 0), sample_dpmpp_2s_ancestral (eta 0), sample_dpmpp_3m_sde (eta 0); and the
               stochastic sample_euler_ancestral, sample_euler and sample_heun with s_churn > 0, sample_dpmpp_sde,
               sample_dpmpp_2m_sde and sample_dpmpp_3m_sde (eta > 0)
  EDM          edm_sampler (Heun) and ablation_sampler(solver='euler') of generate.py, deterministic (S_churn 0) and
               stochastic (S_churn > 0)

and maps each to the `scoresde sample` command line that should reproduce it. The problem is fixed here:

  data     a 2-D mixture of three Gaussians with full covariances (MIXTURE; written as mixture.json)
  SDE      VP, linear schedule beta_min 0.1, beta_max 20, T = 1:
           log alpha_t = -t^2 (b1 - b0) / 4 - t b0 / 2,  sigma_t^2 = 1 - alpha_t^2,  lambda_t = log(alpha_t / sigma_t),
           sigma~_t = sigma_t / alpha_t
  score    exact: p_t = sum_k w_k N(alpha_t mu_k, alpha_t^2 S_k + sigma_t^2 I)
  latents  16 draws of N(0, I) at t_0 = T (latents.npy, (16, 2) float64)
  grids    t_0 = 1 > ... > t_N = 1e-3, no zero appended (grids/*.txt, one time a line): uniform in lambda (N = 6,
           12), Karras et al.'s rho = 7 levels in sigma~ (N = 6, 12), and an irregular grid in lambda (N = 8)

Every sampler returns the state at t_N (no final denoising step, no lower-order final steps). dpm-solver and UniPC
get the noise prediction eps(x, t) = -sigma_t score(x, t) in x coordinates; k-diffusion and EDM get the denoiser
D(x~, sigma~) = x~ + sigma~^2 grad log p~(x~) in x~ = x / alpha_t coordinates (p~ the mixture with covariances
S_k + sigma~^2 I), with sigmas = sigma~(t_i), starting from x~_0 = x_0 / alpha(t_0), their output mapped back
by x_N = alpha(t_N) x~_N. How each code is made to walk a given grid:

  dpm-solver, UniPC  the instance's get_time_steps returns the grid for the call that asks for the whole grid
                     (and DPM-Solver's own logSNR spacing for the singlestep stages inside one step)
  k-diffusion        sigmas is the grid itself
  EDM                net.round_sigma (the hook by which EDM maps its levels to those a network supports) returns
                     the grid's levels; the sampler is stopped at sigma_N, before its last step to sigma = 0,
                     by the network raising when called there for the final step's evaluation

The stochastic samplers run on scoresde's own noise: a case with --noise and --seed among its options gets the
Brownian increments its scoresde sampler draws, with the intervals it draws them over, from `scoresde brownian`
with the same options (the --scoresde binary, required for these cases): one interval a step, [t_{k+1}, t_k], or for
dpmpp_sde two, [s_k, t_k] and [t_{k+1}, s_k] with s_k at the log-SNR midpoint (scoresde's own s_k, so that no
rounding of it separates the two codes' W(s_k) on the Brownian tree). The reference codes get the standard normals
these make: k-diffusion's noise_sampler(sigma, sigma') returns (W(t) - W(t')) / sqrt(t - t') for its interval (the
sum of the drawn intervals it covers: sample_dpmpp_sde asks for [s_k, t_k] and for the whole step), and EDM's
randn_like, and torch.randn_like while k-diffusion's sample_euler and sample_heun run, return step k's
(W(t_k) - W(t_{k+1})) / sqrt(t_k - t_{k+1}) at their k-th call (zeros where scoresde draws nothing). EDM's gamma = S_churn / num_steps counts its last step
to sigma = 0, which the harness below stops before, so it is given S_churn (N + 1) / N for scoresde's S_churn / N.

Each golden output is cross-checked against every other reference code that computes the same method (to 1e-10;
e.g. DDIM = DPM-Solver-1 = DPM-Solver++-1 = k-diffusion's Euler = UniPC-1 without corrector = EDM's Euler). With
--scoresde BIN, the script also solves the probability-flow ODE with `scoresde sample --sampler ode --ode-method
dopri5 --rtol 1e-12 --atol 1e-12` from the same latents and reports each golden output's distance to it.

Regenerate (from the repository root; DIRs are checkouts of the commits in docs/samplers.md):

  /usr/bin/python3 bench/reference_samplers.py --dpm-solver DIR --unipc DIR --k-diffusion DIR --edm DIR \\
      --out tests/data/golden [--scoresde build/release/scoresde]

The outputs are deterministic: the same checkouts give the same files byte for byte.
"""

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

torch.set_default_dtype(torch.float64)  # the reference codes make tensors from Python floats in places

BETA_MIN, BETA_MAX, T_START, T_END = 0.1, 20.0, 1.0, 1e-3
MIXTURE = {
    "weights": [0.5, 0.25, 0.25],
    "means": [[-2.0, 1.0], [2.0, 0.5], [0.0, -2.5]],
    "covariances": [
        [[0.5, 0.25], [0.25, 0.375]],
        [[0.25, -0.0625], [-0.0625, 0.5]],
        [[0.3125, 0.0], [0.0, 0.3125]],
    ],
}
LATENT_SEED, LATENT_COUNT = 20240613, 16
CROSS_CHECK_TOLERANCE = 1e-10
TOLERANCE = 1e-9  # what tests/test_reference_agreement.cpp asks of scoresde
# Every golden output of order >= 2 on a 12-step grid is at most this far from the ODE solution in root mean
# square over the samples (of the Euclidean distance): a coarse check that every code solves the same problem.
# Few-step errors from T = 1 are large here (first order: about 0.4; the worst second- and third-order outputs,
# UniPC with B(h) = h on the Karras grid: about 0.9), and fall at the declared orders as N grows (--convergence).
NEAR_ODE_RMS = 1.0


# ------------------------------------------------------------------------------------------------- the problem

def log_alpha(t):
    return -t * t * (BETA_MAX - BETA_MIN) / 4 - t * BETA_MIN / 2


def alpha(t):
    return math.exp(log_alpha(t))


def sigma(t):
    return math.sqrt(-math.expm1(2 * log_alpha(t)))


def sigma_tilde(t):
    return math.sqrt(math.expm1(-2 * log_alpha(t)))


def lam(t):
    return log_alpha(t) - 0.5 * math.log(-math.expm1(2 * log_alpha(t)))


def t_of_minus_two_log_alpha(L):
    # (b1 - b0) t^2 / 2 + b0 t = L, in the form without cancellation
    return 2 * L / (BETA_MIN + math.sqrt(BETA_MIN ** 2 + 2 * (BETA_MAX - BETA_MIN) * L))


def t_of_lambda(l):
    return t_of_minus_two_log_alpha(math.log1p(math.exp(-2 * l)))


def t_of_sigma_tilde(s):
    return t_of_minus_two_log_alpha(math.log1p(s * s))


class Mixture:
    def __init__(self, spec):
        w = torch.tensor(spec["weights"])
        self.log_w = torch.log(w / w.sum())
        self.means = torch.tensor(spec["means"])
        self.covs = torch.tensor(spec["covariances"])
        self.eye = torch.eye(self.means.shape[1])

    def grad_log_density(self, x, scale, noise_var):
        """grad log sum_k w_k N(x; scale mu_k, scale^2 S_k + noise_var I) at the rows of x."""
        covs = scale * scale * self.covs + noise_var * self.eye
        chol = torch.linalg.cholesky(covs)
        prec = torch.cholesky_inverse(chol)
        diff = x[:, None, :] - scale * self.means[None]
        pd = torch.einsum("kij,nkj->nki", prec, diff)
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        logits = self.log_w - 0.5 * log_det - 0.5 * (diff * pd).sum(-1)
        resp = torch.softmax(logits, dim=1)
        return -(resp[..., None] * pd).sum(1)

    def log_density(self, x, scale, noise_var):
        covs = scale * scale * self.covs + noise_var * self.eye
        dist = torch.distributions.MultivariateNormal(scale * self.means, covariance_matrix=covs)
        return torch.logsumexp(self.log_w + dist.log_prob(x[:, None, :]), dim=1)

    def score(self, x, t):  # x coordinates at time t
        return self.grad_log_density(x, alpha(t), sigma(t) ** 2)

    def denoiser(self, x_tilde, s):  # x~ = x / alpha coordinates at sigma~ = s
        return x_tilde + s * s * self.grad_log_density(x_tilde, 1.0, s * s)


def check_mixture(mix):
    """The score against central differences of the log-density, and the denoiser against the score."""
    x = torch.tensor([[0.3, -0.7], [-1.9, 1.2], [2.5, 0.1]])
    for t in (0.05, 0.5):
        h = 1e-5
        fd = torch.stack([(mix.log_density(x + h * e, alpha(t), sigma(t) ** 2)
                           - mix.log_density(x - h * e, alpha(t), sigma(t) ** 2)) / (2 * h) for e in mix.eye], dim=1)
        assert (fd - mix.score(x, t)).abs().max() < 1e-7, "mixture score"
        d = mix.denoiser(x / alpha(t), sigma_tilde(t))
        x0 = (x + sigma(t) ** 2 * mix.score(x, t)) / alpha(t)
        assert (d - x0).abs().max() < 1e-10, "mixture denoiser"


# --------------------------------------------------------------------------------------------------- the grids

def logsnr_grid(n):
    l0, l1 = lam(T_START), lam(T_END)
    return [T_START] + [t_of_lambda(l0 + i / n * (l1 - l0)) for i in range(1, n)] + [T_END]


def karras_grid(n, rho=7.0):
    smax, smin = sigma_tilde(T_START), sigma_tilde(T_END)
    a, b = smax ** (1 / rho), smin ** (1 / rho)
    return [T_START] + [t_of_sigma_tilde((a + i / n * (b - a)) ** rho) for i in range(1, n)] + [T_END]


def irregular_grid():
    # Uneven fractions of the lambda range: step ratios from about 0.5 to 2, so that the multistep weights see
    # r != 1 at every step.
    u = [0.0, 0.1, 0.18, 0.35, 0.45, 0.62, 0.7, 0.88, 1.0]
    l0, l1 = lam(T_START), lam(T_END)
    return [T_START] + [t_of_lambda(l0 + f * (l1 - l0)) for f in u[1:-1]] + [T_END]


# (name, description, times, the cases run on it: None for every case)
GRIDS = [
    ("logsnr6", "uniform in lambda, N = 6", lambda: logsnr_grid(6), None),
    ("logsnr12", "uniform in lambda, N = 12", lambda: logsnr_grid(12), None),
    ("karras6", "Karras rho = 7 in sigma~, N = 6", lambda: karras_grid(6), None),
    ("karras12", "Karras rho = 7 in sigma~, N = 12", lambda: karras_grid(12), None),
    ("irregular8", "irregular in lambda (fractions 0 .1 .18 .35 .45 .62 .7 .88 1), N = 8", irregular_grid, None),
    # Two third-order methods of two codes on a fine grid: within ANCHOR_TOLERANCE of the ODE's solution, which
    # ties the golden problem (mixture, SDE, latents, coordinates) to scoresde's own score and ODE.
    ("logsnr192", "uniform in lambda, N = 192 (anchors to the ODE solution)", lambda: logsnr_grid(192),
     ["dpm_solver_o3_singlestep", "unipc_o3_bh2_unic_on"]),
]
ANCHOR_TOLERANCE = 1e-4  # their distance to dopri5 (rtol = atol = 1e-12) is about 2e-5


# ------------------------------------------------------------------------------------- importing the references

class _Stub(types.ModuleType):
    """A module standing in for one the reference code imports but the samplers used here never call."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _anything


def _anything(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:  # used as a decorator
        return args[0]
    return _anything


def _stub(name, **attrs):
    module = _Stub(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def _stub_if_missing(name, **attrs):
    try:
        importlib.import_module(name)
    except ImportError:
        _stub(name, **attrs)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_references(args):
    refs = {}
    refs["dpm-solver"] = _load("dpm_solver_pytorch", os.path.join(args.dpm_solver, "dpm_solver_pytorch.py"))
    refs["unipc"] = _load("uni_pc", os.path.join(args.unipc, "uni_pc.py"))

    # k-diffusion: sampling.py imports torchsde, torchdiffeq and tqdm (the samplers run here call none of them:
    # every noise sampler is given), and utils.py imports torchvision and safetensors; the package's __init__
    # imports training code, so the package is created empty and sampling.py loaded into it.
    _stub_if_missing("torchsde")
    _stub_if_missing("torchdiffeq", odeint=_anything)
    try:
        importlib.import_module("tqdm.auto")
    except ImportError:
        _stub("tqdm", tqdm=_anything, trange=lambda *a, **k: range(*a))
        _stub("tqdm.auto", tqdm=_anything, trange=lambda *a, **k: range(*a))
    _stub_if_missing("safetensors")
    try:
        importlib.import_module("torchvision.transforms.functional")
    except ImportError:
        _stub("torchvision")
        _stub("torchvision.transforms")
        _stub("torchvision.transforms.functional")
    package_dir = os.path.join(args.k_diffusion, "k_diffusion")
    package = types.ModuleType("k_diffusion")
    package.__path__ = [package_dir]
    sys.modules["k_diffusion"] = package
    refs["k-diffusion"] = importlib.import_module("k_diffusion.sampling")

    # EDM: generate.py imports click, tqdm, PIL, dnnlib and torch_utils for its command line, which is not used.
    _stub("click")
    _stub_if_missing("PIL")
    _stub_if_missing("PIL.Image")
    _stub("dnnlib")
    _stub("torch_utils")
    _stub("torch_utils.distributed")
    refs["edm"] = _load("edm_generate", os.path.join(args.edm, "generate.py"))
    return refs


REPOSITORIES = {  # name: (GitHub repository, files imported, command-line option)
    "dpm-solver": ("LuChengTHU/dpm-solver", ["dpm_solver_pytorch.py"], "dpm_solver"),
    "unipc": ("wl-zhao/UniPC", ["uni_pc.py"], "unipc"),
    "k-diffusion": ("crowsonkb/k-diffusion", ["k_diffusion/sampling.py", "k_diffusion/utils.py"], "k_diffusion"),
    "edm": ("NVlabs/edm", ["generate.py"], "edm"),
}


def describe_checkouts(args):
    out = {}
    for name, (repo, files, attr) in REPOSITORIES.items():
        root = getattr(args, attr)
        try:
            commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], check=True, capture_output=True,
                                    text=True).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            commit = "unknown (not a git checkout)"
        hashes = {f: hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest() for f in files}
        out[name] = {"repository": repo, "commit": commit, "sha256": hashes}
    return out


# ------------------------------------------------------------------------------------------ running the samplers

class Problem:
    def __init__(self, mix, grid, x0, noise=None):
        self.mix = mix
        self.grid = grid                          # Python floats, t_0 > ... > t_N
        self.x0 = x0                              # (n, d) at t_0, x coordinates
        self.sigmas = [sigma_tilde(t) for t in grid]
        self.noise = noise                        # ScoresdeNoise for the stochastic samplers

    # dpm-solver and UniPC: noise prediction in x coordinates (their model_fn(x, t) with t of shape (n,))
    def noise_fn(self, x, t):
        shape = x.shape
        tt = float(t.reshape(-1)[0])
        xf = x.reshape(shape[0], -1)
        return (-sigma(tt) * self.mix.score(xf, tt)).reshape(shape)

    def grid_tensor(self):
        return torch.tensor(self.grid)

    def to_tilde(self):
        return self.x0 / alpha(self.grid[0])

    def from_tilde(self, x_tilde):
        return alpha(self.grid[-1]) * x_tilde


# ------------------------------------------------------------------------------------------- scoresde's noise

class ScoresdeNoise:
    """The Brownian increments a scoresde sampler draws (`scoresde brownian` with a case's options on its grid, --denoise
    off): the intervals (t, t_next) it asked for, in order, with W(t) - W(t_next) for every sample."""

    def __init__(self, binary, options, grid_file, grid, n, dim, tmp):
        assert binary, "the stochastic cases need --scoresde: they run on scoresde's noise (scoresde brownian)"
        out = os.path.join(tmp, "increments.npy")
        subprocess.run([binary, "brownian", "--sde", "vp", "--beta-min", str(BETA_MIN), "--beta-max", str(BETA_MAX)]
                       + list(options) + ["--time-grid", grid_file, "--denoise", "off", "-n", str(n), "--dim",
                                          str(dim), "--out", out], check=True)
        with open(out + ".json") as f:
            requests = json.load(f)["requests"]
        w = torch.from_numpy(np.load(out)).reshape(len(requests), n, dim)
        self.grid = grid
        self.intervals = [(r["t"], r["t_next"], w[i]) for i, r in enumerate(requests)]

    def normal(self, t, t_next):
        """(W(t) - W(t_next)) / sqrt(t - t_next) over consecutive drawn intervals from t to t_next (matched to 1e-9
        relative: the reference's own times are scoresde's up to rounding; scoresde's are used), or None when no
        drawn interval starts at t."""
        close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b))
        starts = [i for i, (a, _, _) in enumerate(self.intervals) if close(a, t)]
        if not starts:
            return None
        i = starts[0]
        total, first = self.intervals[i][2].clone(), self.intervals[i][0]
        while not close(self.intervals[i][1], t_next):
            i += 1
            assert i < len(self.intervals) and self.intervals[i][0] == self.intervals[i - 1][1], (t, t_next)
            total += self.intervals[i][2]
        return total / math.sqrt(first - self.intervals[i][1])

    def step_normal(self, k):
        """z_k = (W(t_k) - W(t_{k+1})) / sqrt(t_k - t_{k+1}), None when step k drew nothing."""
        return self.normal(self.grid[k], self.grid[k + 1])


class KdNoiseSampler:
    """k-diffusion's noise_sampler(sigma, sigma_next) on scoresde's noise: the normal of the interval [t(sigma_next),
    t(sigma)], as k-diffusion's BrownianTreeNoiseSampler makes it from its own tree."""

    def __init__(self, problem):
        self.problem = problem

    def __call__(self, sigma, sigma_next):
        z = self.problem.noise.normal(t_of_sigma_tilde(float(sigma)), t_of_sigma_tilde(float(sigma_next)))
        assert z is not None, (float(sigma), float(sigma_next))
        return z


class StepNormals:
    """randn_like for samplers that draw one normal a step, in order: step k's z_k at the k-th call (zeros where
    scoresde draws nothing, which these samplers multiply by 0)."""

    def __init__(self, problem):
        self.problem, self.calls = problem, 0

    def __call__(self, x):
        k, self.calls = self.calls, self.calls + 1
        z = self.problem.noise.step_normal(k) if k < len(self.problem.grid) - 1 else None
        if z is None:  # a step that draws nothing (outside the churn window; past the grid's last step)
            return torch.zeros_like(x)
        assert z.shape == x.shape
        return z


@contextlib.contextmanager
def randn_like_replaced(fn):
    """torch.randn_like replaced by fn while k-diffusion's sample_euler and sample_heun run (they call it directly)."""
    original = torch.randn_like
    torch.randn_like = fn
    try:
        yield
    finally:
        torch.randn_like = original


def with_grid(solver, problem):
    """Make solver.get_time_steps return the problem's grid when asked for the whole range, and the logSNR spacing
    (DPM-Solver's own, for the singlestep stages) for any sub-interval."""
    original = solver.get_time_steps
    grid = problem.grid_tensor()

    def get_time_steps(skip_type, t_T, t_0, N, device):
        if N == len(problem.grid) - 1 and float(t_T) == problem.grid[0] and float(t_0) == problem.grid[-1]:
            return grid.to(device)
        return original("logSNR", t_T, t_0, N, device)

    solver.get_time_steps = get_time_steps
    return solver


def run_dpm_solver(refs, problem, algorithm_type, method, order, solver_type):
    dpm = refs["dpm-solver"]
    ns = dpm.NoiseScheduleVP("linear", continuous_beta_0=BETA_MIN, continuous_beta_1=BETA_MAX, dtype=torch.float64)
    solver = with_grid(dpm.DPM_Solver(problem.noise_fn, ns, algorithm_type=algorithm_type), problem)
    n = len(problem.grid) - 1
    steps = n * order if method == "singlestep_fixed" else n  # singlestep_fixed takes steps // order steps
    return solver.sample(problem.x0.clone(), steps=steps, t_start=problem.grid[0], t_end=problem.grid[-1],
                         order=order, skip_type="logSNR", method=method, lower_order_final=False,
                         denoise_to_zero=False, solver_type=solver_type)


def run_unipc(refs, problem, variant, order, corrector):
    up = refs["unipc"]
    ns = up.NoiseScheduleVP("linear", continuous_beta_0=BETA_MIN, continuous_beta_1=BETA_MAX, dtype=torch.float64)
    solver = with_grid(up.UniPC(problem.noise_fn, ns, algorithm_type="data_prediction", variant=variant), problem)
    if not corrector:
        # UniPC's own switch: multistep_uni_pc_update(..., use_corrector=False) (UniP alone, as on its last step)
        update = solver.multistep_uni_pc_update
        solver.multistep_uni_pc_update = lambda *a, **k: update(*a, **{**k, "use_corrector": False})
    x = problem.x0.clone()[:, :, None, None]  # its einsum wants (batch, channels, height, width)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per step
        out = solver.sample(x, steps=len(problem.grid) - 1, t_start=problem.grid[0], t_end=problem.grid[-1],
                            order=order, skip_type="logSNR", method="multistep", lower_order_final=False,
                            denoise_to_zero=False)
    return out[:, :, 0, 0]


def run_k_diffusion(refs, problem, name, noise=None, **kwargs):
    """noise: None (deterministic), "sampler" (noise_sampler on scoresde's noise) or "randn_like" (sample_euler and
    sample_heun with s_churn, which call torch.randn_like)."""
    kd = refs["k-diffusion"]
    model = lambda x, s: problem.mix.denoiser(x, float(s[0]))
    sampler = getattr(kd, name)
    x_tilde = problem.to_tilde()
    if noise == "sampler":
        kwargs["noise_sampler"] = KdNoiseSampler(problem)
    elif "eta" in kwargs:  # eta = 0: no noise enters (sample_dpmpp_2s_ancestral still adds noise times sigma_up = 0)
        kwargs["noise_sampler"] = lambda sigma, sigma_next: torch.zeros_like(x_tilde)
    with randn_like_replaced(StepNormals(problem)) if noise == "randn_like" else contextlib.nullcontext():
        out = sampler(model, x_tilde, torch.tensor(problem.sigmas), disable=True, **kwargs)
    return problem.from_tilde(out)


class _ReachedSigmaN(Exception):
    def __init__(self, x):
        super().__init__()
        self.x = x


class EdmNet:
    """What EDM's samplers ask of a network: the denoiser, sigma_min/max and round_sigma."""

    sigma_min, sigma_max = 0.0, float("inf")

    def __init__(self, problem, evals_before_last_step):
        self.problem = problem
        self.levels = torch.tensor(problem.sigmas)
        self.calls = 0
        self.stop_at = evals_before_last_step

    def round_sigma(self, sigma):
        if sigma.ndim == 1 and sigma.numel() == self.levels.numel():  # the whole discretization
            return self.levels.clone()
        return sigma

    def __call__(self, x, sigma, class_labels=None):
        if self.calls == self.stop_at:  # the last step, from sigma_N to 0: stop with the state at sigma_N
            raise _ReachedSigmaN(x)
        self.calls += 1
        return self.problem.mix.denoiser(x, float(sigma))


def run_edm(refs, problem, solver, churn=None):
    """churn: None, or dict(S_churn=..., S_min=..., S_max=..., S_noise=...) in scoresde's terms (gamma = S_churn / N);
    the sampler gets S_churn (N + 1) / N, as its num_steps counts the step to sigma = 0."""
    edm = refs["edm"]
    n = len(problem.grid) - 1
    s = problem.sigmas
    net = EdmNet(problem, evals_before_last_step=(2 if solver == "heun" else 1) * n)
    latents = problem.to_tilde() / s[0]  # both samplers start from latents * sigma_0
    kwargs = {}
    if churn is not None:
        kwargs = dict(churn, S_churn=churn["S_churn"] * (n + 1) / n, randn_like=StepNormals(problem))
    try:
        if solver == "heun":
            edm.edm_sampler(net, latents, num_steps=n + 1, sigma_min=s[-1], sigma_max=s[0], rho=7, **kwargs)
        else:
            edm.ablation_sampler(net, latents, num_steps=n + 1, sigma_min=s[-1], sigma_max=s[0], rho=7,
                                 solver="euler", discretization="edm", schedule="linear", scaling="none", **kwargs)
    except _ReachedSigmaN as reached:
        return problem.from_tilde(reached.x)
    raise AssertionError("EDM's sampler did not reach its last step")


# --------------------------------------------------------------------------------------------------- the cases

class Ref:
    def __init__(self, key, call, run, order):
        self.key, self.call, self.run, self.order = key, call, run, order


def references():
    refs = []

    def add(key, call, run, order):
        refs.append(Ref(key, call, run, order))

    sample = "DPM_Solver(algorithm_type='{}').sample(method='{}', order={}, solver_type='{}')"
    for algo in ("dpmsolver", "dpmsolver++"):
        for method in ("multistep", "singlestep_fixed"):
            for order in (1, 2, 3):
                for st in (("dpmsolver",) if order == 1 else ("dpmsolver", "taylor")):
                    key = f"dpm-solver/{algo}/{method}/o{order}/{st}"
                    add(key, "dpm-solver " + sample.format(algo, method, order, st),
                        lambda r, p, a=algo, m=method, o=order, s=st: run_dpm_solver(r, p, a, m, o, s),
                        2 if (method == "multistep" and order == 3) else order)
    for variant in ("bh1", "bh2"):
        for order in (1, 2, 3):
            for corrector in (True, False):
                key = f"unipc/{variant}/o{order}/{'unic' if corrector else 'nounic'}"
                call = f"UniPC UniPC(algorithm_type='data_prediction', variant='{variant}').sample(method='multistep', order={order})"
                if not corrector:
                    call += " with multistep_uni_pc_update(use_corrector=False)"
                add(key, call, lambda r, p, v=variant, o=order, c=corrector: run_unipc(r, p, v, o, c),
                    order + (1 if corrector else 0))
    add("k-diffusion/euler", "k-diffusion sample_euler", lambda r, p: run_k_diffusion(r, p, "sample_euler"), 1)
    add("k-diffusion/heun", "k-diffusion sample_heun", lambda r, p: run_k_diffusion(r, p, "sample_heun"), 2)
    add("k-diffusion/dpm_2", "k-diffusion sample_dpm_2", lambda r, p: run_k_diffusion(r, p, "sample_dpm_2"), 2)
    for order in (1, 2, 3, 4):
        add(f"k-diffusion/lms/o{order}", f"k-diffusion sample_lms(order={order})",
            lambda r, p, o=order: run_k_diffusion(r, p, "sample_lms", order=o), order)
    add("k-diffusion/dpmpp_2m", "k-diffusion sample_dpmpp_2m", lambda r, p: run_k_diffusion(r, p, "sample_dpmpp_2m"), 2)
    for st in ("midpoint", "heun"):
        add(f"k-diffusion/dpmpp_2m_sde/{st}", f"k-diffusion sample_dpmpp_2m_sde(eta=0, solver_type='{st}')",
            lambda r, p, s=st: run_k_diffusion(r, p, "sample_dpmpp_2m_sde", eta=0.0, solver_type=s), 2)
    add("k-diffusion/dpmpp_2s_ancestral", "k-diffusion sample_dpmpp_2s_ancestral(eta=0)",
        lambda r, p: run_k_diffusion(r, p, "sample_dpmpp_2s_ancestral", eta=0.0), 2)
    add("k-diffusion/dpmpp_3m_sde", "k-diffusion sample_dpmpp_3m_sde(eta=0)",
        lambda r, p: run_k_diffusion(r, p, "sample_dpmpp_3m_sde", eta=0.0), 2)
    add("edm/heun", "EDM edm_sampler(S_churn=0)", lambda r, p: run_edm(r, p, "heun"), 2)
    add("edm/euler", "EDM ablation_sampler(solver='euler', discretization='edm', schedule='linear', scaling='none')",
        lambda r, p: run_edm(r, p, "euler"), 1)

    # The stochastic samplers, on scoresde's noise (Problem.noise). Order 1: their strong order.
    for eta in ETAS:
        add(f"k-diffusion/euler_ancestral/eta{eta}", f"k-diffusion sample_euler_ancestral(eta={eta})",
            lambda r, p, e=eta: run_k_diffusion(r, p, "sample_euler_ancestral", noise="sampler", eta=e), 1)
        add(f"k-diffusion/dpmpp_sde/eta{eta}", f"k-diffusion sample_dpmpp_sde(eta={eta})",
            lambda r, p, e=eta: run_k_diffusion(r, p, "sample_dpmpp_sde", noise="sampler", eta=e), 1)
        for st in ("midpoint", "heun"):
            add(f"k-diffusion/dpmpp_2m_sde/{st}/eta{eta}",
                f"k-diffusion sample_dpmpp_2m_sde(eta={eta}, solver_type='{st}')",
                lambda r, p, e=eta, s=st: run_k_diffusion(r, p, "sample_dpmpp_2m_sde", noise="sampler", eta=e,
                                                          solver_type=s), 1)
        add(f"k-diffusion/dpmpp_3m_sde/eta{eta}", f"k-diffusion sample_dpmpp_3m_sde(eta={eta})",
            lambda r, p, e=eta: run_k_diffusion(r, p, "sample_dpmpp_3m_sde", noise="sampler", eta=e), 1)
    for name, churn in CHURNS.items():
        text = ", ".join(f"{k}={v}" for k, v in churn.items())
        kd = dict(s_churn=churn["S_churn"], s_tmin=churn["S_min"], s_tmax=churn["S_max"], s_noise=churn["S_noise"])
        kd_text = ", ".join(f"{k}={v}" for k, v in kd.items())
        add(f"edm/heun/{name}", f"EDM edm_sampler({text}; S_churn scaled by (N + 1) / N)",
            lambda r, p, c=churn: run_edm(r, p, "heun", churn=c), 1)
        add(f"edm/euler/{name}", f"EDM ablation_sampler(solver='euler', ..., {text}; S_churn scaled by (N + 1) / N)",
            lambda r, p, c=churn: run_edm(r, p, "euler", churn=c), 1)
        add(f"k-diffusion/heun/{name}", f"k-diffusion sample_heun({kd_text})",
            lambda r, p, c=kd: run_k_diffusion(r, p, "sample_heun", noise="randn_like", **c), 1)
        add(f"k-diffusion/euler/{name}", f"k-diffusion sample_euler({kd_text})",
            lambda r, p, c=kd: run_k_diffusion(r, p, "sample_euler", noise="randn_like", **c), 1)
    return {r.key: r for r in refs}


# The stochastic cases' settings: eta values, churn settings (scoresde's S_churn: gamma = S_churn / N), noise.
ETAS = (1.0, 0.5)
CHURNS = {
    "churn": {"S_churn": 2.0, "S_min": 0.0, "S_max": float("inf"), "S_noise": 1.0},
    # gamma capped at sqrt(2) - 1 on every grid here; sigma~ runs from about 0.01 to 152, so the window cuts both ends
    "churn_window": {"S_churn": 10.0, "S_min": 0.05, "S_max": 20.0, "S_noise": 1.007},
}
TREE = ["--noise", "brownian_tree", "--seed", "7"]
INDEPENDENT = ["--noise", "independent", "--seed", "11"]


def churn_options(churn):
    c = CHURNS[churn]
    out = ["--s-churn", repr(c["S_churn"])]
    if c["S_min"] != 0:
        out += ["--s-tmin", repr(c["S_min"])]
    if not math.isinf(c["S_max"]):
        out += ["--s-tmax", repr(c["S_max"])]
    if c["S_noise"] != 1:
        out += ["--s-noise", repr(c["S_noise"])]
    return out


def eta_label(eta, always=False):
    return "" if eta == 1.0 and not always else f"_eta{eta:g}"


DDIM_EQUIVALENTS = ["dpm-solver/dpmsolver++/multistep/o1/dpmsolver", "dpm-solver/dpmsolver/singlestep_fixed/o1/dpmsolver",
                    "dpm-solver/dpmsolver++/singlestep_fixed/o1/dpmsolver", "unipc/bh1/o1/nounic", "unipc/bh2/o1/nounic",
                    "k-diffusion/euler", "k-diffusion/lms/o1", "edm/euler"]

# (case name, scoresde options, the reference it reproduces, the references that compute the same method)
CASES = [
    ("ddim", ["--sampler", "ddim"], "dpm-solver/dpmsolver/multistep/o1/dpmsolver", DDIM_EQUIVALENTS),
    ("edm_euler", ["--sampler", "edm_euler"], "edm/euler", ["k-diffusion/euler"]),
    ("edm_heun", ["--sampler", "edm_heun"], "edm/heun", ["k-diffusion/heun"]),
    ("dpm_2", ["--sampler", "dpm_2"], "k-diffusion/dpm_2", []),
] + [
    (f"lms_o{o}", ["--sampler", "lms", "--order", str(o), "--lower-order-final", "off"], f"k-diffusion/lms/o{o}",
     ["k-diffusion/euler"] if o == 1 else [])
    for o in (1, 2, 3, 4)
] + [
    (f"dpm_solver_o{o}_singlestep", ["--sampler", "dpm_solver", "--order", str(o), "--solver-method", "singlestep"],
     f"dpm-solver/dpmsolver/singlestep_fixed/o{o}/dpmsolver", ["k-diffusion/euler"] if o == 1 else [])
    for o in (1, 2, 3)
] + [
    ("dpm_solver_o1_multistep", ["--sampler", "dpm_solver", "--order", "1", "--solver-method", "multistep",
                                 "--lower-order-final", "off"],
     "dpm-solver/dpmsolver/multistep/o1/dpmsolver", ["k-diffusion/euler"]),
] + [
    (f"dpm_solver_o2_multistep_{t}", ["--sampler", "dpm_solver", "--order", "2", "--solver-method", "multistep",
                                      "--solver-type", t, "--lower-order-final", "off"],
     f"dpm-solver/dpmsolver/multistep/o2/{st}", [])
    for t, st in (("midpoint", "dpmsolver"), ("heun", "taylor"))
] + [
    ("dpm_solver_o3_multistep_reference", ["--sampler", "dpm_solver", "--order", "3", "--solver-method", "multistep",
                                           "--dpmpp3m-form", "reference", "--lower-order-final", "off"],
     "dpm-solver/dpmsolver/multistep/o3/dpmsolver", []),
] + [
    ("dpmpp_2s", ["--sampler", "dpmpp_2s"], "dpm-solver/dpmsolver++/singlestep_fixed/o2/dpmsolver",
     ["k-diffusion/dpmpp_2s_ancestral"]),
    ("dpmpp_2m_midpoint", ["--sampler", "dpmpp_2m", "--solver-type", "midpoint", "--lower-order-final", "off"],
     "dpm-solver/dpmsolver++/multistep/o2/dpmsolver", ["k-diffusion/dpmpp_2m", "k-diffusion/dpmpp_2m_sde/midpoint"]),
    ("dpmpp_2m_heun", ["--sampler", "dpmpp_2m", "--solver-type", "heun", "--lower-order-final", "off"],
     "dpm-solver/dpmsolver++/multistep/o2/taylor", ["k-diffusion/dpmpp_2m_sde/heun"]),
    ("dpmpp_3m_reference", ["--sampler", "dpmpp_3m", "--dpmpp3m-form", "reference", "--lower-order-final", "off"],
     "dpm-solver/dpmsolver++/multistep/o3/dpmsolver", []),
] + [
    (f"unipc_o{o}_{v}_unic_{'on' if c else 'off'}",
     ["--sampler", "unipc", "--order", str(o), "--unipc-variant", v, "--unic", "on" if c else "off",
      "--lower-order-final", "off"],
     f"unipc/{v}/o{o}/{'unic' if c else 'nounic'}", DDIM_EQUIVALENTS[:1] if (o == 1 and not c) else [])
    for v in ("bh1", "bh2") for o in (1, 2, 3) for c in (True, False)
] + [
    # The order-2 warm-up step in the taylor (heun) form: --solver-type heun.
    ("dpmpp_3m_reference_heun", ["--sampler", "dpmpp_3m", "--dpmpp3m-form", "reference", "--solver-type", "heun",
                                 "--lower-order-final", "off"],
     "dpm-solver/dpmsolver++/multistep/o3/taylor", ["k-diffusion/dpmpp_3m_sde"]),
    ("dpm_solver_o3_multistep_reference_heun",
     ["--sampler", "dpm_solver", "--order", "3", "--solver-method", "multistep", "--dpmpp3m-form", "reference",
      "--solver-type", "heun", "--lower-order-final", "off"],
     "dpm-solver/dpmsolver/multistep/o3/taylor", []),
] + [
    # Stochastic samplers on scoresde's noise (--noise, --seed): k-diffusion and EDM given the same increments.
    # DDIM(eta) is euler_ancestral(eta) in x~ coordinates (solvers/ddim.cpp).
    (f"{name}{eta_label(eta, name == 'ddim')}{suffix}", ["--sampler", name, "--eta", repr(eta)] + noise,
     f"k-diffusion/euler_ancestral/eta{eta}", [])
    for name in ("euler_ancestral", "ddim") for eta in ETAS
    for suffix, noise in (("", TREE), ("_independent", INDEPENDENT)) if not (suffix and eta != 1.0)
] + [
    (f"dpmpp_sde{eta_label(eta)}{suffix}", ["--sampler", "dpmpp_sde", "--eta", repr(eta)] + noise,
     f"k-diffusion/dpmpp_sde/eta{eta}", [])
    for eta in ETAS for suffix, noise in (("", TREE), ("_independent", INDEPENDENT)) if not (suffix and eta != 1.0)
] + [
    (f"dpmpp_2m_sde_{st}{eta_label(eta)}",
     ["--sampler", "dpmpp_2m_sde", "--eta", repr(eta), "--solver-type", st, "--lower-order-final", "off"] + TREE,
     f"k-diffusion/dpmpp_2m_sde/{st}/eta{eta}", [])
    for st in ("midpoint", "heun") for eta in ETAS
] + [
    (f"dpmpp_3m_sde_reference{eta_label(eta)}",
     ["--sampler", "dpmpp_3m_sde", "--eta", repr(eta), "--dpmpp3m-form", "reference", "--solver-type", "heun",
      "--lower-order-final", "off"] + TREE,
     f"k-diffusion/dpmpp_3m_sde/eta{eta}", [])
    for eta in ETAS
] + [
    (f"{name}_{churn}", ["--sampler", name] + churn_options(churn) + TREE, f"edm/{solver}/{churn}",
     [f"k-diffusion/{solver}/{churn}"])
    for name, solver in (("edm_euler", "euler"), ("edm_heun", "heun")) for churn in CHURNS
]

# References with no scoresde command line that should reproduce them, and why; their outputs are kept beside
# the cases (unmapped/), for a form or option added later.
UNMAPPED = [
    ("dpm-solver/dpmsolver/singlestep_fixed/o2/taylor", "no --solver-type for singlestep dpm_solver"),
    ("dpm-solver/dpmsolver/singlestep_fixed/o3/taylor", "no --solver-type for singlestep dpm_solver"),
    ("dpm-solver/dpmsolver++/singlestep_fixed/o2/taylor", "dpmpp_2s has no --solver-type"),
    ("dpm-solver/dpmsolver++/singlestep_fixed/o3/dpmsolver", "no singlestep third-order DPM-Solver++ sampler"),
    ("dpm-solver/dpmsolver++/singlestep_fixed/o3/taylor", "no singlestep third-order DPM-Solver++ sampler"),
]
UNMAPPED_CROSS_CHECKS = {}


# ------------------------------------------------------------------------------------------------------ output

def case_noise(options):
    """A stochastic case's options (those with --noise), as the key of the noise its sampler draws; None for a
    deterministic case."""
    return tuple(options) if "--noise" in options else None


def save_npy(path, x):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(x.detach().numpy(), dtype=np.float64))


def write_grid(path, grid, comment):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# {comment}: times t_0 > ... > t_N of the VP SDE (beta 0.1..20), written by "
                f"bench/reference_samplers.py\n")
        for t in grid:
            f.write(repr(float(t)) + "\n")


def read_grid(path):
    return [float(w) for line in open(path) for w in line.split("#")[0].split()]


def ode_solution(binary, out_dir, grid_file, tmp):
    """scoresde's probability-flow ODE by dopri5 from the latents at t_0 to t_N of the grid file."""
    out = os.path.join(tmp, "ode.npy")
    subprocess.run([binary, "sample", "--data", os.path.join(out_dir, "mixture.json"), "--sde", "vp",
                    "--beta-min", str(BETA_MIN), "--beta-max", str(BETA_MAX),
                    "--init", os.path.join(out_dir, "latents.npy"), "--time-grid", grid_file, "--sampler", "ode",
                    "--ode-method", "dopri5", "--rtol", "1e-12", "--atol", "1e-12", "--out", out, "--quiet"],
                   check=True)
    return torch.from_numpy(np.load(out))


def rms_distance(x, y):
    return float(((x - y) ** 2).sum(1).mean().sqrt())


def convergence(refs, mix, table, x0, ode, keys):
    """Max distance to the ODE solution on logsnr grids of N = 12 .. 384 steps, and the slope of log error
    against log N over the last three (the order each code converges at)."""
    ns = [12, 24, 48, 96, 192, 384]
    print(f"convergence to scoresde's dopri5 solution on logsnr grids, N = {ns}: max |x_N - x_ode|, slope")
    for key in keys:
        errors = []
        for n in ns:
            x = table[key].run(refs, Problem(mix, logsnr_grid(n), x0))
            errors.append(float((x - ode).abs().max()))
        slope = -np.polyfit(np.log(ns[-3:]), np.log(errors[-3:]), 1)[0]
        print(f"  {table[key].call}: " + " ".join(f"{e:.2e}" for e in errors) + f"  slope {slope:.2f}")


def manifest_text(manifest):
    """JSON with one line per grid, case and unmapped output."""
    parts = []
    for key, value in manifest.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            text = "[\n" + ",\n".join("  " + json.dumps(v) for v in value) + "\n ]"
        else:
            text = json.dumps(value, indent=1).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dpm-solver", required=True, help="checkout of LuChengTHU/dpm-solver")
    parser.add_argument("--unipc", required=True, help="checkout of wl-zhao/UniPC")
    parser.add_argument("--k-diffusion", required=True, help="checkout of crowsonkb/k-diffusion")
    parser.add_argument("--edm", required=True, help="checkout of NVlabs/edm")
    parser.add_argument("--out", required=True, help="the golden directory (tests/data/golden)")
    parser.add_argument("--scoresde", help="scoresde binary: also compare with its dopri5 ODE solution")
    parser.add_argument("--convergence", action="store_true",
                        help="with --scoresde: each code's error against N on logsnr grids, and its slope")
    args = parser.parse_args()

    refs = load_references(args)
    mix = Mixture(MIXTURE)
    check_mixture(mix)
    table = references()
    names = [c[0] for c in CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    for _, _, primary, checks in CASES:
        assert primary in table and all(c in table for c in checks), primary
    for key, _ in UNMAPPED:
        assert key in table, key
    for g in GRIDS:
        assert g[3] is None or all(name in names for name in g[3]), g[0]

    out = args.out
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "mixture.json"), "w") as f:
        json.dump(MIXTURE, f, indent=1)
        f.write("\n")
    latents = np.random.default_rng(LATENT_SEED).standard_normal((LATENT_COUNT, 2))
    np.save(os.path.join(out, "latents.npy"), latents)
    x0 = torch.from_numpy(np.load(os.path.join(out, "latents.npy")))

    grids, cases, unmapped = [], [], []
    worst_cross = (0.0, "")
    near_ode = []  # (grid, case, order, rms, max) distances to the ODE solution
    with tempfile.TemporaryDirectory() as tmp:
        for gname, comment, make, only in GRIDS:
            gfile = f"grids/{gname}.txt"
            write_grid(os.path.join(out, gfile), make(), comment)
            grid = read_grid(os.path.join(out, gfile))  # the times exactly as scoresde will read them
            grids.append({"name": gname, "file": gfile, "steps": len(grid) - 1, "description": comment})
            ode = ode_solution(args.scoresde, out, os.path.join(out, gfile), tmp) if args.scoresde else None
            problems, outputs = {}, {}

            def output(key, noise=None):
                """The reference's output on this grid; noise: None, or the options of a stochastic case."""
                if noise not in problems:
                    problems[noise] = Problem(mix, grid, x0, noise and ScoresdeNoise(
                        args.scoresde, noise, os.path.join(out, gfile), grid, x0.shape[0], x0.shape[1], tmp))
                if (key, noise) not in outputs:
                    x = table[key].run(refs, problems[noise])
                    assert x.shape == x0.shape and torch.isfinite(x).all(), key
                    outputs[(key, noise)] = x
                return outputs[(key, noise)]

            for name, options, primary, checks in CASES:
                if only is not None and name not in only:
                    continue
                noise = case_noise(options)
                x = output(primary, noise)
                cross = {}
                for c in checks:
                    d = float((output(c, noise) - x).abs().max())
                    cross[table[c].call] = float(f"{d:.3g}")
                    if d > worst_cross[0]:
                        worst_cross = (d, f"{name} on {gname} vs {table[c].call}")
                    assert d <= CROSS_CHECK_TOLERANCE, f"{name} on {gname}: {primary} and {c} differ by {d:.3g}"
                expected = f"{gname}/{name}.npy"
                save_npy(os.path.join(out, expected), x)
                case = {"name": name, "grid": gname, "options": options, "expected": expected,
                        "reference": table[primary].call, "order": table[primary].order}
                if cross:
                    case["cross_checks"] = cross
                if only is not None:
                    case["ode_tolerance"] = ANCHOR_TOLERANCE
                if ode is not None and noise is None:  # a stochastic output solves another problem
                    rms, worst = rms_distance(x, ode), float((x - ode).abs().max())
                    near_ode.append((gname, name, table[primary].order, rms, worst))
                    if only is not None:
                        assert worst <= ANCHOR_TOLERANCE, f"{name} on {gname}: {worst:.3g} from the ODE solution"
                    elif table[primary].order >= 2 and len(grid) - 1 >= 12:
                        assert rms <= NEAR_ODE_RMS, f"{name} on {gname}: {rms:.3g} (rms) from the ODE solution"
                cases.append(case)
            if only is not None:
                continue
            for key, reason in UNMAPPED:
                x = output(key)
                cross = {}
                for c in UNMAPPED_CROSS_CHECKS.get(key, []):
                    d = float((output(c) - x).abs().max())
                    cross[table[c].call] = float(f"{d:.3g}")
                    assert d <= CROSS_CHECK_TOLERANCE, f"{key} on {gname} vs {c}: {d:.3g}"
                fname = f"unmapped/{gname}/{key.replace('/', '_').replace('+', 'p')}.npy"
                save_npy(os.path.join(out, fname), x)
                entry = {"grid": gname, "reference": table[key].call, "file": fname, "reason": reason}
                if cross:
                    entry["cross_checks"] = cross
                unmapped.append(entry)

        if args.convergence:
            assert args.scoresde, "--convergence needs --scoresde"
            ode = ode_solution(args.scoresde, out, os.path.join(out, grids[0]["file"]), tmp)
            keys = list(dict.fromkeys([c[2] for c in CASES if case_noise(c[1]) is None] + [u[0] for u in UNMAPPED]))
            convergence(refs, mix, table, x0, ode, keys)

    manifest = {
        "description": "Outputs of the authors' samplers on an exact Gaussian-mixture score, and the scoresde "
                       "options that should reproduce each (tests/test_reference_agreement.cpp). Written by "
                       "bench/reference_samplers.py; see docs/samplers.md.",
        "repositories": describe_checkouts(args),
        "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
        "data": "mixture.json",
        "latents": "latents.npy",
        "sde": ["--sde", "vp", "--beta-min", "0.1", "--beta-max", "20"],
        "common_options": ["--denoise", "off"],
        "tolerance": TOLERANCE,
        "ode_options": ["--sampler", "ode", "--ode-method", "dopri5", "--rtol", "1e-12", "--atol", "1e-12"],
        "grids": grids,
        "cases": cases,
        "unmapped": unmapped,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(manifest_text(manifest))

    print(f"{len(cases)} cases on {len(grids)} grids, {len(unmapped)} unmapped outputs; written to {out}")
    print(f"largest difference between codes computing the same method: {worst_cross[0]:.3g} ({worst_cross[1]})")
    if near_ode:
        print("distance to scoresde's dopri5 solution (rtol = atol = 1e-12): rms over samples / max |.|")
        for g in grids:
            rows = [f"{name}={r:.2f}/{m:.2f}" if m > 1e-3 else f"{name}={r:.1e}/{m:.1e}"
                    for gname, name, _, r, m in near_ode if gname == g["name"]]
            print(f"  {g['name']}: " + " ".join(rows))


if __name__ == "__main__":
    main()
