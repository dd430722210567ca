#!/usr/bin/python3
"""Saves a PyTorch score network as a TorchScript archive that `scoresde ... --model FILE.pt` reads.

    import sys; sys.path.insert(0, "scripts")
    from scoresde_torch import save_score_module
    save_score_module(net, "model.pt", sde={"sde": "vp"}, parameterization="noise",
                      scaling={"mean": [0.0, 0.0], "scale": [1.0, 1.0]})

The module's forward must take (x: (n, d), t: (n,)) and return a tensor shaped like x, in the type of its
parameters (float32 or float64). It is compiled with torch.jit.script (or torch.jit.trace on example inputs when
scripting fails, or pass trace=True) and saved with the extra file scoresde.json:

    {"dim": d, "parameterization": "noise" | "scaled_score" | "data" | "v",
     "sde": {"sde": "vp", "schedule": "linear", "beta-min": 0.1, ...},   # keys as `scoresde sample --sde ...`
     "scaling": {"mean": [...], "scale": [...]}}                          # the model sees (x - mean) / scale

sde, parameterization and scaling may be None: the command line then gives the SDE and the parameterisation, and
the scaling is the identity.
"""
import json

import torch

METADATA_FILE = "scoresde.json"
PARAMETERIZATIONS = ("noise", "scaled_score", "data", "v")
SDE_KEYS = ("sde", "schedule", "beta-min", "beta-max", "cosine-s", "sigma-min", "sigma-max", "T")


def _metadata(dim, sde, parameterization, scaling):
    meta = {"dim": int(dim)}
    if parameterization is not None:
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization = {parameterization}: choose one of {', '.join(PARAMETERIZATIONS)}")
        if parameterization == "v" and sde is not None and sde.get("sde", "vp") != "vp":
            raise ValueError("parameterization = v: only under the vp SDE")
        meta["parameterization"] = parameterization
    if sde is not None:
        # The keys of `scoresde sample --sde ...` (beta-min or beta_min); those left out take scoresde's defaults.
        sde = {key.replace("_", "-"): value for key, value in dict(sde).items()}
        if "kind" in sde and "sde" not in sde:
            sde["sde"] = sde.pop("kind")
        unknown = set(sde) - set(SDE_KEYS)
        if unknown:
            raise ValueError(f"sde: unknown keys {sorted(unknown)}; use {', '.join(SDE_KEYS)}")
        meta["sde"] = sde
    if scaling is not None:
        mean = [float(v) for v in scaling["mean"]]
        scale = [float(v) for v in scaling["scale"]]
        if len(mean) != dim or len(scale) != dim:
            raise ValueError(f"scaling: mean and scale need {dim} entries each")
        meta["scaling"] = {"mean": mean, "scale": scale}
    return meta


def save_score_module(module, path, sde=None, parameterization=None, scaling=None, dim=None, trace=False):
    """Compiles `module` to TorchScript and writes it to `path` with its scoresde.json metadata.

    dim: the data dimension; by default the length of scaling["mean"], or the module's attribute `dim`.
    Returns the compiled module."""
    if dim is None and scaling is not None:
        dim = len(scaling["mean"])
    if dim is None and isinstance(getattr(module, "dim", None), int):
        dim = module.dim
    if dim is None:
        raise ValueError("dim: give the data dimension (or scaling, or a module attribute dim)")
    meta = _metadata(dim, sde, parameterization, scaling)
    module = module.eval()
    if isinstance(module, torch.jit.ScriptModule):
        compiled = module
    elif trace:
        compiled = _trace(module, dim)
    else:
        try:
            compiled = torch.jit.script(module)
        except Exception:  # noqa: BLE001  (scripting fails on dynamic Python: tracing records one run)
            compiled = _trace(module, dim)
    torch.jit.save(compiled, path, _extra_files={METADATA_FILE: json.dumps(meta)})
    return compiled


def _trace(module, dim):
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros(3, dim, dtype=dtype)
    t = torch.full((3,), 0.5, dtype=dtype)
    return torch.jit.trace(module, (x, t))


def load_metadata(path):
    """The scoresde.json metadata of a saved module (an empty dict when it has none)."""
    extra = {METADATA_FILE: ""}
    torch.jit.load(path, _extra_files=extra)
    text = extra[METADATA_FILE]
    return json.loads(text) if text else {}
