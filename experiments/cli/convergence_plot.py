# The figure of `scoresde convergence --out DIR`. The scoresde program embeds this script at build time and runs it
# with /usr/bin/python3 (Debian's numpy and matplotlib), passing DIR and "quiet" or "". It reads DIR/errors.csv and DIR/orders.csv and
# writes DIR/convergence.png (through a temporary file and a rename): the error against NFE, log-log, one panel per
# kind of error (path, strong, weak), one line per sampler configuration, 95% error bars where the error has a
# standard error; the legend gives each configuration's measured order with its standard error and the declared one.
import csv
import math
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    sys.stderr.write(
        "convergence: needs Debian's matplotlib for /usr/bin/python3 ({}); "
        "install it with: sudo apt-get install python3-matplotlib\n".format(e)
    )
    sys.exit(2)

TITLES = {
    "path": "path error (probability-flow samplers)\nRMS |x - x_ref| against dopri5",
    "strong": "strong error (SDE samplers)\nRMS |x - x_ref| on the same Brownian path",
    "weak": "weak error\nW2(exact output law, exact law at t_N)",
}


def number(text):
    return float(text) if text not in ("", None) else float("nan")


def main():
    directory = sys.argv[1]
    with open(os.path.join(directory, "errors.csv")) as f:
        errors = list(csv.DictReader(f))
    with open(os.path.join(directory, "orders.csv")) as f:
        orders = {(r["label"], r["kind"]): r for r in csv.DictReader(f)}
    kinds = [k for k in ("path", "strong", "weak") if any(r["kind"] == k for r in errors)]
    if not kinds:
        sys.stderr.write("convergence: {} holds no errors\n".format(os.path.join(directory, "errors.csv")))
        sys.exit(2)
    labels = list(dict.fromkeys(r["label"] for r in errors))
    colors = (plt.rcParams["axes.prop_cycle"].by_key()["color"] if len(labels) <= 10 else
              [plt.get_cmap("tab20")(i) for i in range(20)])
    markers = "osD^v<>ph*"
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.6 * len(kinds), 4.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for i, label in enumerate(labels):
            pts = sorted((r for r in errors if r["kind"] == kind and r["label"] == label), key=lambda r: number(r["nfe"]))
            if not pts:
                continue
            o = orders.get((label, kind), {})
            measured, se, declared = number(o.get("measured_order")), number(o.get("slope_se")), o.get("declared_order")
            name = "{}: {:.2f}{} (declared {})".format(
                label, measured, " ± {:.2f}".format(se) if not math.isnan(se) else "", declared or "-")
            ses = [number(r["error_se"]) for r in pts]
            ax.errorbar([number(r["nfe"]) for r in pts], [number(r["error"]) for r in pts],
                        yerr=[1.96 * s if not math.isnan(s) else 0.0 for s in ses], label=name,
                        color=colors[i % len(colors)], marker=markers[i % len(markers)], markersize=4, capsize=2,
                        linewidth=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations per sample)")
        ax.set_ylabel("error")
        ax.set_title(TITLES[kind], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        # Below the panel, so that it never hides a line.
        ax.legend(fontsize=7, title="measured order ± SE (declared)", title_fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.suptitle("scoresde convergence: error against NFE (error bars: 95% over samples)", fontsize=10)
    fig.tight_layout()
    path = os.path.join(directory, "convergence.png")
    tmp = path + ".tmp"
    fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    if len(sys.argv) < 3 or sys.argv[2] != "quiet":
        print("convergence: wrote {}".format(path))


main()
