#!/usr/bin/python3
"""Draws the first images of a sample file as a grid (PNG), to look at samples by eye.

    /usr/bin/python3 examples/fashion_mnist/image_grid.py SAMPLES.npy OUT.png [--count 64] [--columns 8]

SAMPLES.npy: an (n, 784) array (what `scoresde sample` writes for 28 x 28 images) or (n, 28, 28), pixels in
[-1, 1] (clipped to it for display)."""
import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    x = np.load(args.samples)
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise SystemExit(f"{args.samples}: shape {x.shape}; expected (n, 784) or (n, 28, 28)")
    count = min(args.count, x.shape[0])
    rows = (count + args.columns - 1) // args.columns
    grid = np.ones((rows * 30, args.columns * 30))
    for k in range(count):
        r, c = divmod(k, args.columns)
        grid[r * 30 + 1:r * 30 + 29, c * 30 + 1:c * 30 + 29] = np.clip(x[k], -1.0, 1.0)
    fig = plt.figure(figsize=(args.columns * 0.6, rows * 0.6 + (0.3 if args.title else 0)), dpi=100)
    plt.imshow(grid, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
    plt.axis("off")
    if args.title:
        plt.title(args.title, fontsize=8)
    fig.savefig(args.out, bbox_inches="tight", pad_inches=0.05)
    print(f"wrote {args.out} ({count} images)")


if __name__ == "__main__":
    main()
