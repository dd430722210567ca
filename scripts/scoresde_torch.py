#!/usr/bin/python3
"""Saves a PyTorch score network as a TorchScript archive that `scoresde ... --model FILE.pt` reads.

    import sys; sys.path.insert(0, "scripts")
    from scoresde_torch import save_score_module
    save_score_module(net, "model.pt", sde={"sde": "vp"}, parameterization="noise",
                      scaling={"mean": [0.0, 0.0], "scale": [1.0, 1.0]})

The module's forward must take (x: (n, d), t: (n,)) -- or (x: (n, C, H, W), t: (n,)) with shape=(C, H, W) --
and return a tensor shaped like x, in the type of its parameters (float32 or float64). It is compiled with
torch.jit.script (or torch.jit.trace on example inputs when scripting fails, or pass trace=True) and saved with
the extra file scoresde.json:

    {"dim": d, "parameterization": "noise" | "scaled_score" | "data" | "v",
     "sde": {"sde": "vp", "schedule": "linear", "beta-min": 0.1, ...},   # keys as `scoresde sample --sde ...`
     "scaling": {"mean": [...], "scale": [...]},                         # the model sees (x - mean) / scale
     "time-input": "t" | "log_sigma" | "sigma" | "index",                # what forward's t is (default t)
     "index-scale": s,                                                   # index: (t - 1/N) s, default s = N
     "shape": [C, H, W]}                                                 # one point's shape (default [d])

sde, parameterization, scaling, time_input, index_scale and shape may be None: the command line then gives the SDE
and the parameterisation, the scaling is the identity, the time input t and the shape (d).

A model trained on DDPM's integer steps n = 0..N-1 with alphas_cumprod (a tensor, array or list of N values):

    save_score_module(unet, "ddpm.pt", sde={"sde": "vp", "schedule": "discrete", "alphas-cumprod": alphas_cumprod},
                      parameterization="noise", time_input="index", shape=(3, 32, 32))

scoresde interpolates log alpha_t linearly between t_n = (n + 1) / N as DPM-Solver's NoiseScheduleVP('discrete')
does and passes the module (t - 1/N) N, the step n at t = t_n (index_scale=1000 gives DPM-Solver's model_wrapper
convention for any N).

scoresde's own MLP converts both ways (ScoreMlp below is the same network in PyTorch):

    /usr/bin/python3 scripts/scoresde_torch.py ckpt-to-pt MODEL.ckpt MODEL.pt [--weights ema|raw]
    /usr/bin/python3 scripts/scoresde_torch.py pt-to-ckpt MODEL.pt MODEL.ckpt

The module gets the checkpoint's SDE, scaling, parameterisation and time input, and its architecture under "mlp"
in the metadata; pt-to-ckpt reads a module saved so (or a ScoreMlp saved with extra={"mlp": net.architecture()}).
Both give the same samples to float32 rounding (tests/test_torchscript.cpp).
"""
import argparse
import json
import math
import struct

import torch

METADATA_FILE = "scoresde.json"
PARAMETERIZATIONS = ("noise", "scaled_score", "data", "v")
TIME_INPUTS = ("t", "log_sigma", "sigma", "index")
SDE_KEYS = ("sde", "schedule", "beta-min", "beta-max", "cosine-s", "alphas-cumprod", "sigma-min", "sigma-max", "T")


def _metadata(dim, sde, parameterization, scaling, time_input=None, index_scale=None, shape=None):
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
        if sde.get("alphas-cumprod") is not None:
            # Full float64 precision (json writes the shortest repr that reads back exactly).
            values = sde["alphas-cumprod"]
            if isinstance(values, torch.Tensor):
                values = values.detach().to(torch.float64).cpu().tolist()
            sde["alphas-cumprod"] = [float(v) for v in values]
            if sde.get("schedule", "discrete") != "discrete":
                raise ValueError("sde: alphas-cumprod needs schedule discrete")
            sde["schedule"] = "discrete"
        meta["sde"] = sde
    if time_input is not None:
        if time_input not in TIME_INPUTS:
            raise ValueError(f"time_input = {time_input}: choose one of {', '.join(TIME_INPUTS)}")
        if time_input == "index" and (sde is None or sde.get("schedule") != "discrete"):
            raise ValueError("time_input = index: needs a discrete schedule (sde with alphas-cumprod)")
        meta["time-input"] = time_input
    if index_scale is not None:
        if time_input != "index" or not float(index_scale) > 0:
            raise ValueError("index_scale: a positive number, with time_input = index")
        meta["index-scale"] = float(index_scale)
    if shape is not None:
        shape = [int(v) for v in shape]
        size = 1
        for v in shape:
            size *= v
        if size != dim or min(shape) < 1:
            raise ValueError(f"shape = {shape}: positive sizes whose product is dim = {dim}")
        meta["shape"] = shape
    if scaling is not None:
        mean = [float(v) for v in scaling["mean"]]
        scale = [float(v) for v in scaling["scale"]]
        if len(mean) != dim or len(scale) != dim:
            raise ValueError(f"scaling: mean and scale need {dim} entries each")
        meta["scaling"] = {"mean": mean, "scale": scale}
    return meta


def save_score_module(module, path, sde=None, parameterization=None, scaling=None, dim=None, trace=False,
                      time_input=None, index_scale=None, shape=None, extra=None):
    """Compiles `module` to TorchScript and writes it to `path` with its scoresde.json metadata.

    dim: the data dimension; by default the product of shape, the length of scaling["mean"], or the module's
    attribute `dim`. extra: further metadata keys (scoresde ignores them). Returns the compiled module."""
    if dim is None and shape is not None:
        dim = 1
        for v in shape:
            dim *= int(v)
    if dim is None and scaling is not None:
        dim = len(scaling["mean"])
    if dim is None and isinstance(getattr(module, "dim", None), int):
        dim = module.dim
    if dim is None:
        raise ValueError("dim: give the data dimension (or shape, scaling, or a module attribute dim)")
    meta = _metadata(dim, sde, parameterization, scaling, time_input, index_scale, shape)
    for key, value in (extra or {}).items():
        if key in meta:
            raise ValueError(f"extra: {key} is a metadata key of its own")
        meta[key] = value
    point = tuple(meta.get("shape", [dim]))
    module = module.eval()
    if isinstance(module, torch.jit.ScriptModule):
        compiled = module
    elif trace:
        compiled = _trace(module, point)
    else:
        try:
            compiled = torch.jit.script(module)
        except Exception:  # noqa: BLE001  (scripting fails on dynamic Python: tracing records one run)
            compiled = _trace(module, point)
    torch.jit.save(compiled, path, _extra_files={METADATA_FILE: json.dumps(meta)})
    return compiled


def _trace(module, point):
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros((3,) + tuple(point), dtype=dtype)
    t = torch.full((3,), 0.5, dtype=dtype)
    return torch.jit.trace(module, (x, t))


def load_metadata(path):
    """The scoresde.json metadata of a saved module (an empty dict when it has none)."""
    extra = {METADATA_FILE: ""}
    torch.jit.load(path, _extra_files=extra)
    text = extra[METADATA_FILE]
    return json.loads(text) if text else {}


# ----------------------------------------------------------------------------------- scoresde's MLP in PyTorch

class ScoreMlp(torch.nn.Module):
    """scoresde's MLP score network (models/mlp.hpp) as a PyTorch module, layer for layer:

        h_0 = [x; e(c)],  e(c) = [sin(2 pi w c); cos(2 pi w c)] (fourier, F frequencies w) or e(c) = c (raw)
        h_{l+1} = silu(W_l h_l + b_l),  output W_{L-1} h_{L-1} + b_{L-1}

    c is the module's time argument (the SDE's t, or log sigma_t when saved with time_input="log_sigma"). The
    embedding is computed in float64 and cast to the network's type, as scoresde does. layers.{l}.weight is W_l
    (out, in), as torch.nn.Linear."""

    def __init__(self, dim: int, hidden=(128, 128, 128), time_embedding: str = "fourier",
                 frequencies=None, fourier_features: int = 16, fourier_scale: float = 4.0,
                 dtype=torch.float32):
        super().__init__()
        if time_embedding not in ("fourier", "raw"):
            raise ValueError(f"time_embedding = {time_embedding}: choose fourier or raw")
        self.dim = int(dim)
        self.fourier = time_embedding == "fourier"
        if self.fourier:
            if frequencies is None:
                frequencies = torch.randn(fourier_features, dtype=torch.float64) * fourier_scale
            freq = torch.as_tensor(frequencies, dtype=torch.float64).reshape(-1)
        else:
            freq = torch.zeros(0, dtype=torch.float64)
        self.register_buffer("frequencies", freq)
        widths = [self.dim + (2 * freq.numel() if self.fourier else 1)] + [int(h) for h in hidden] + [self.dim]
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(widths[i], widths[i + 1], dtype=dtype) for i in range(len(widths) - 1)])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = t.to(torch.float64).unsqueeze(1)
        if self.fourier:
            angle = 2.0 * math.pi * c * self.frequencies.unsqueeze(0)
            e = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
        else:
            e = c
        h = torch.cat([x, e.to(x.dtype)], dim=1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = torch.nn.functional.silu(h)
        return h

    def architecture(self, time_input="t", parameterization="noise", fourier_scale=4.0):
        """The network's architecture as a scoresde checkpoint records it."""
        dtype = self.layers[0].weight.dtype
        return {"dim": self.dim, "hidden": [layer.out_features for layer in list(self.layers)[:-1]],
                "time_embedding": "fourier" if self.fourier else "raw", "time_input": time_input,
                "fourier_features": int(self.frequencies.numel()) if self.fourier else 16,
                "fourier_scale": float(fourier_scale), "parameterization": parameterization,
                "precision": "float64" if dtype == torch.float64 else "float32", "activation": "silu"}

    def flat_weights(self):
        """The weights in scoresde's layout: for each layer, W_l (out x in, column-major), then b_l."""
        parts = []
        for layer in self.layers:
            parts += [layer.weight.detach().t().reshape(-1), layer.bias.detach().reshape(-1)]
        return torch.cat(parts).to(torch.float64)

    def load_flat_weights(self, flat):
        flat = torch.as_tensor(flat, dtype=torch.float64)
        at = 0
        with torch.no_grad():
            for layer in self.layers:
                out_f, in_f = layer.weight.shape
                layer.weight.copy_(flat[at:at + out_f * in_f].reshape(in_f, out_f).t())
                at += out_f * in_f
                layer.bias.copy_(flat[at:at + out_f])
                at += out_f
        if at != flat.numel():
            raise ValueError(f"{flat.numel()} weights for a network of {at} parameters")


# ------------------------------------------------------------------------------ scoresde checkpoints (MODEL.ckpt)

CHECKPOINT_MAGIC = b"SSDECKPT"
# scoresde's SDE defaults (core/sde.hpp, SdeOptions), to complete a partial SDE declaration in a checkpoint.
SDE_DEFAULTS = {"sde": "vp", "schedule": "linear", "beta-min": 0.1, "beta-max": 20.0, "cosine-s": 0.008,
                "sigma-min": 0.01, "sigma-max": 50.0}


def _fnv1a(data):
    h = 1469598103934665603
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def read_checkpoint(path):
    """A checkpoint of `scoresde train` (models/checkpoint.cpp): its JSON header and arrays (float64 tensors)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != CHECKPOINT_MAGIC:
        raise ValueError(f"{path}: not a scoresde checkpoint")
    version, header_size = struct.unpack_from("<IQ", data, 8)
    header = json.loads(data[20:20 + header_size].decode())
    if _fnv1a(data[:-8]) != struct.unpack_from("<Q", data, len(data) - 8)[0]:
        raise ValueError(f"{path}: corrupted (checksum mismatch)")
    at, arrays = 20 + header_size, {}
    for spec in header["arrays"]:
        size = 4 if spec["dtype"] == "f4" else 8
        raw = data[at:at + spec["count"] * size]
        arrays[spec["name"]] = torch.tensor(struct.unpack(f"<{spec['count']}{'f' if size == 4 else 'd'}", raw),
                                            dtype=torch.float64)
        at += spec["count"] * size
    return version, header, arrays


def write_checkpoint(path, version, header, arrays):
    """Writes a checkpoint that `scoresde` reads: header (its "arrays" list is rewritten), arrays by name."""
    f4 = header["architecture"]["precision"] == "float32"
    names = ("frequencies", "weights", "ema")
    header = dict(header)
    header["arrays"] = [{"name": n, "dtype": "f8" if n == "frequencies" or not f4 else "f4",
                         "count": int(arrays[n].numel())} for n in names]
    text = json.dumps(header, separators=(",", ":")).encode()
    data = bytearray(CHECKPOINT_MAGIC) + struct.pack("<IQ", version, len(text)) + text
    for n, spec in zip(names, header["arrays"]):
        values = arrays[n].to(torch.float64).tolist()
        data += struct.pack(f"<{len(values)}{'f' if spec['dtype'] == 'f4' else 'd'}", *values)
    data += struct.pack("<Q", _fnv1a(data))
    with open(path, "wb") as f:
        f.write(data)


def checkpoint_to_torchscript(checkpoint, path, weights="ema"):
    """Writes the MLP of a scoresde checkpoint as an equivalent TorchScript module (ScoreMlp) with its SDE, data
    scaling, parameterisation and time input in the metadata, and the checkpoint's architecture under "mlp" (so
    that torchscript_to_checkpoint can read it back). weights: ema (what scoresde samples with) or raw."""
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights = {weights}: choose ema or raw")
    version, header, arrays = read_checkpoint(checkpoint)
    a = header["architecture"]
    dtype = torch.float64 if a["precision"] == "float64" else torch.float32
    net = ScoreMlp(a["dim"], a["hidden"], a["time_embedding"], arrays["frequencies"], a["fourier_features"],
                   a["fourier_scale"], dtype)
    net.load_flat_weights(arrays["ema" if weights == "ema" else "weights"])
    compiled = save_score_module(net, path, sde=header["sde"], parameterization=a["parameterization"],
                                 scaling=header["scaling"], dim=a["dim"], time_input=a["time_input"],
                                 extra={"mlp": a, "checkpoint_version": version})
    return compiled


def torchscript_to_checkpoint(module_path, checkpoint):
    """The inverse: a TorchScript ScoreMlp saved by checkpoint_to_torchscript (or by save_score_module with
    extra={"mlp": net.architecture(...)}) as a scoresde checkpoint; its weights are both the raw and the EMA
    weights."""
    module = torch.jit.load(module_path)
    meta = load_metadata(module_path)
    if "mlp" not in meta:
        raise ValueError(f"{module_path}: no \"mlp\" architecture in its metadata (not a ScoreMlp saved by "
                         "checkpoint_to_torchscript or with extra={'mlp': ...})")
    a = dict(meta["mlp"])
    a["parameterization"] = meta.get("parameterization", a.get("parameterization", "noise"))
    a["time_input"] = meta.get("time-input", a.get("time_input", "t"))
    net = ScoreMlp(a["dim"], a["hidden"], a["time_embedding"], module.frequencies, a["fourier_features"],
                   a["fourier_scale"], torch.float64)
    state = {k: v.to(torch.float64) for k, v in module.state_dict().items()}
    net.load_state_dict(state)
    flat = net.flat_weights()
    sde = dict(SDE_DEFAULTS)
    sde.update(meta.get("sde") or {})
    if "T" not in sde:
        sde["T"] = 0.999 if sde["sde"] != "ve" and sde["schedule"] == "cosine" else 1.0
    dim = a["dim"]
    scaling = meta.get("scaling") or {"mean": [0.0] * dim, "scale": [1.0] * dim}
    header = {"format": "scoresde checkpoint", "version": meta.get("checkpoint_version", 1), "architecture": a,
              "sde": sde, "scaling": scaling, "training": {"source": "torchscript", "file": module_path}}
    write_checkpoint(checkpoint, header["version"], header,
                     {"frequencies": net.frequencies if net.fourier else torch.zeros(0, dtype=torch.float64),
                      "weights": flat, "ema": flat})


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Converts scoresde's MLP between a checkpoint of `scoresde train` and an equivalent TorchScript "
                    "module (same samples to float32 rounding).")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("ckpt-to-pt", help="MODEL.ckpt -> MODEL.pt")
    a.add_argument("checkpoint")
    a.add_argument("module")
    a.add_argument("--weights", default="ema", choices=("ema", "raw"))
    b = sub.add_parser("pt-to-ckpt", help="MODEL.pt (a converted or ScoreMlp module) -> MODEL.ckpt")
    b.add_argument("module")
    b.add_argument("checkpoint")
    args = parser.parse_args(argv)
    if args.command == "ckpt-to-pt":
        checkpoint_to_torchscript(args.checkpoint, args.module, args.weights)
        print(f"wrote {args.module}")
    else:
        torchscript_to_checkpoint(args.module, args.checkpoint)
        print(f"wrote {args.checkpoint}")


if __name__ == "__main__":
    main()
