#!/usr/bin/python3
"""The TorchScript benchmark's modules, and the same modules called from Python (bench/run_torchscript_benchmarks.sh;
docs/benchmarks.md, "TorchScript models").

    /usr/bin/python3 bench/reference_torchscript.py --write-modules DIR
        writes DIR/mlp.pt and DIR/unet.pt with save_score_module (scripts/scoresde_torch.py), random weights:
          mlp   2-128-128-2: Linear(3, 128) - SiLU - Linear(128, 128) - SiLU - Linear(128, 2) on [x, t], float32
          unet  a small U-Net on 1 x 8 x 8 points (d = 64), float32: conv 1->8, conv 8->8 (8 x 8), a stride-2
                conv 8->16 (4 x 4), conv 16->16, a transposed conv 16->8 back to 8 x 8, the skip concatenated,
                conv 16->8, conv 8->1; 3 x 3 kernels, SiLU, t added through a linear map per block
          copy  forward(x, t) = x (a copy) on d = 64: what an evaluation costs around the module (the call, and in
                scoresde the conversions to and from the module's type and the score)
        all noise parameterisation, VP SDE
    /usr/bin/python3 bench/reference_torchscript.py [--batches 512,10000] [--threads 1,2] [--repeats R]
                                                   [--json FILE] NAME=MODEL.pt ...
        times module(x, t) on the same batch as bench_torchscript (N(0, I) states in the module's type, made
        beforehand; t = 0.5), torch.set_num_threads(T), under torch.no_grad(): R calls after one warm-up, the best
        in ms, as JSON lines {"program": "pytorch", ...}
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from scoresde_torch import load_metadata, save_score_module  # noqa: E402


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128),
                                       torch.nn.SiLU(), torch.nn.Linear(128, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t.unsqueeze(1)], dim=1))


class Block(torch.nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = torch.nn.Linear(1, c_out)

    def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(self.conv(h) + self.time(t.unsqueeze(1)).unsqueeze(2).unsqueeze(3))


class UNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = Block(1, 8)
        self.enc = Block(8, 8)
        self.down = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.mid = Block(16, 16)
        self.up = torch.nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = Block(16, 8)
        self.out = torch.nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h1 = self.enc(self.inp(x, t), t)
        h2 = self.mid(torch.nn.functional.silu(self.down(h1)), t)
        h = self.dec(torch.cat([self.up(h2), h1], dim=1), t)
        return self.out(h)


class Copy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # float32

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.clone()


def write_modules(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    sde = {"sde": "vp"}
    save_score_module(Mlp(), os.path.join(out_dir, "mlp.pt"), sde=sde, parameterization="noise", dim=2)
    save_score_module(UNet(), os.path.join(out_dir, "unet.pt"), sde=sde, parameterization="noise", shape=(1, 8, 8))
    save_score_module(Copy(), os.path.join(out_dir, "copy.pt"), sde=sde, parameterization="noise", dim=64)


def time_modules(args):
    rows = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        module = torch.jit.load(path)
        meta = load_metadata(path)
        point = tuple(meta.get("shape", [meta["dim"]]))
        dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
        for batch in args.batches:
            gen = torch.Generator().manual_seed(1)
            x = torch.randn((batch,) + point, generator=gen, dtype=torch.float64).to(dtype)
            t = torch.full((batch,), 0.5, dtype=dtype)
            for threads in args.threads:
                torch.set_num_threads(threads)
                with torch.no_grad():
                    module(x, t)  # warm-up
                    best = float("inf")
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        module(x, t)
                        best = min(best, (time.perf_counter() - start) * 1e3)
                print(f"pytorch {name} batch {batch} threads {threads}: {best:.3f} ms", flush=True)
                rows.append({"program": "pytorch", "net": name, "batch": batch, "threads": threads, "ms": best,
                             "torch": torch.__version__})
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write-modules", metavar="DIR")
    parser.add_argument("--batches", default="512,10000")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json")
    parser.add_argument("models", nargs="*")
    args = parser.parse_args()
    if args.write_modules:
        write_modules(args.write_modules)
        return
    args.batches = [int(v) for v in args.batches.split(",")]
    args.threads = [int(v) for v in args.threads.split(",")]
    time_modules(args)


if __name__ == "__main__":
    main()
