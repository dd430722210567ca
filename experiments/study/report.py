# The figures and summary of `scoresde report DIR`. The scoresde program embeds this script at build time and runs
# it with /usr/bin/python3 (Debian's numpy and matplotlib), passing: DIR, the command line, the scoresde version.
# It reads DIR/results.json (written by `scoresde study`) and DIR/samples/*.npy, and writes DIR/figures/*.png and
# DIR/report.md, each through a temporary file and a rename.
import json
import math
import os
import sys
from collections import OrderedDict, defaultdict

try:
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:
    sys.stderr.write(
        "report: needs Debian's numpy and matplotlib for /usr/bin/python3 ({}); "
        "install them with: sudo apt-get install python3-numpy python3-matplotlib\n".format(e)
    )
    sys.exit(2)

# Metrics where larger is better; every other metric is a distance or an error, better when smaller in size.
HIGHER_IS_BETTER = {"mode_coverage", "in_mode", "coverage"}
# Metrics that can be negative (unbiased estimators, log-likelihoods): plotted on a linear axis.
SIGNED = {"mmd2", "nll", "nll_gap", "energy"}
PRIMARY_ORDER = ["gaussian_w2", "fd_fmnist", "sliced_w2", "mmd2", "energy", "frechet", "nll_gap", "nll"]
# Against a reference solution of the run's own latents and path; path_kind says which (path: dopri5; strong: the
# refined sampler on the same Brownian path).
PATH_METRICS = {"path_error", "path_error_max"}


def atomic_write(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def savefig(fig, path):
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png"))
    plt.close(fig)


def point_of(row):
    """The x-axis position a run occupies within its configuration: its steps, or its tolerance."""
    if row.get("steps") is not None:
        return ("steps", row["steps"])
    if row.get("rtol") is not None:
        return ("rtol", row["rtol"])
    return ("exact", 0)


def is_baseline(e):
    return e.get("sampler") == "exact" or e.get("label") == "exact samples"


def aggregate(rows, metrics):
    """Mean over replicate seeds per (data, score, sde, label, point, n): a block's cells at their own sample count
    are cells of their own. The standard error of the mean of k independent runs is sqrt(sum se_i^2) / k, from each
    run's own standard error (replicate seeds draw independent samples)."""
    groups = OrderedDict()
    for r in rows:
        key = (r["data"], r["score"], r["sde"], r["label"], point_of(r), r["n"])
        groups.setdefault(key, []).append(r)
    out = []
    for (data, score, sde, label, point, n), runs in groups.items():
        ok = [r for r in runs if r["status"] == "ok"]
        entry = {
            "data": data,
            "score": score,
            "sde": sde,
            "label": label,
            "point": point,
            "n": n,
            "runs": len(runs),
            "diverged": len(runs) - len(ok),
            "nfe": float(np.mean([r["nfe"] for r in ok])) if ok else float("nan"),
            "failures": [r.get("failure") for r in runs if r["status"] != "ok"],
        }
        for m in metrics:
            vals = [r[m] for r in ok if r.get(m) is not None]
            ses = [r[m + "_se"] for r in ok if r.get(m + "_se") is not None]
            if vals:
                entry[m] = float(np.mean(vals))
                entry[m + "_se"] = math.sqrt(sum(s * s for s in ses)) / len(vals) if ses else float("nan")
        out.append(entry)
    return out


# Two-sided 5% critical values of Student's t with 1 .. 30 degrees of freedom; beyond, the Cornish-Fisher expansion
# about the normal quantile (its error is below 1e-4 there).
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_critical(dof):
    if dof <= len(T_975):
        return T_975[dof - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * dof) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2)


def badness(metric, v):
    """What a smaller value of means better: |v| for errors and distances, -v where higher is better."""
    return -v if metric in HIGHER_IS_BETTER else abs(v)


def paired_comparisons(rows, metric):
    """Every pair of sampler configurations at the same NFE (same data, score and SDE; for the path metrics the same
    path_kind, as path errors of probability-flow and SDE samplers are against different references), paired over the
    replicate seeds
    both ran: per seed d_s = badness(A_s) - badness(B_s), where both runs start from the same prior draws and, with
    --noise brownian_tree, follow the same Brownian path. Returns {(data, score, sde, nfe, path kind, n): [cell, ...]},
    each cell a
    configuration at that NFE with its mean, SE over seeds and the lists of configurations it is significantly
    better and worse than: paired t-test, two-sided, 5% (|mean d| / (sd(d) / sqrt(K)) > t_{0.975, K - 1}), K >= 2
    seeds, no correction for the number of pairs."""
    cells = OrderedDict()
    for r in rows:
        if is_baseline(r) or r["status"] != "ok" or r.get(metric) is None:
            continue
        key = (r["data"], r["score"], r["sde"], r["label"], point_of(r), r["n"])
        cells.setdefault(key, {"nfe": [], "values": {}, "kind": r.get("path_kind") if metric in PATH_METRICS else None})
        cells[key]["nfe"].append(r["nfe"])
        cells[key]["values"][r["seed"]] = r[metric]
    groups = OrderedDict()
    for (data, score, sde, label, point, n), c in cells.items():
        nfe = float(np.mean(c["nfe"]))
        # Path errors against dopri5 (path) and against the refined SDE sampler (strong) are distances to different
        # limits: compared within a kind only.
        groups.setdefault((data, score, sde, round(nfe, 6), c["kind"], n), []).append(
            {"label": label, "point": point, "values": c["values"], "better": [], "worse": []})
    out = OrderedDict()
    for key, group in groups.items():
        if len(group) < 2:
            continue
        for a in group:
            v = list(a["values"].values())
            a["mean"] = float(np.mean(v))
            a["se"] = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        compared = False
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                seeds = sorted(set(a["values"]) & set(b["values"]))
                if len(seeds) < 2:
                    continue
                compared = True
                d = np.array([badness(metric, a["values"][s]) - badness(metric, b["values"][s]) for s in seeds])
                mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
                significant = abs(mean) > t_critical(len(d) - 1) * se if se > 0 else mean != 0
                if significant:
                    (a if mean < 0 else b)["better"].append(b if mean < 0 else a)
                    (b if mean < 0 else a)["worse"].append(a if mean < 0 else b)
        if compared:
            group.sort(key=lambda c: badness(metric, c["mean"]))
            out[key] = group
    # The SDEs in the study's order; within one, by kind and NFE.
    first = {}
    for key in groups:
        first.setdefault(key[:3], len(first))
    return OrderedDict(sorted(out.items(), key=lambda kv: (first[kv[0][:3]], kv[0][4] or "", kv[0][3])))


def cell_name(c):
    return "{} ({} {})".format(c["label"], "N =" if c["point"][0] == "steps" else "rtol", c["point"][1])


def better(metric, a, b):
    if metric in HIGHER_IS_BETTER:
        return a > b
    return abs(a) < abs(b)


def fmt(v, se=None):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if se is None:
        return "{:.4g}".format(v)
    return "{:.4g} ± {:.2g}".format(v, se)


def metric_figure(entries, metric, sdes, labels, path, title, baseline=None):
    fig, axes = plt.subplots(1, len(sdes), figsize=(5.2 * len(sdes), 4.2), squeeze=False, sharey=True)
    # Up to 10 configurations take the default colours; more take tab20's 20, so that no two lines share a colour and
    # a marker before the 20th.
    colors = (plt.rcParams["axes.prop_cycle"].by_key()["color"] if len(labels) <= 10 else
              [plt.get_cmap("tab20")(i) for i in range(20)])
    markers = "osD^v<>ph*"
    signed = metric in SIGNED or any(e.get(metric, 1) <= 0 for e in entries if metric in e)
    for ax, sde in zip(axes[0], sdes):
        for i, label in enumerate(labels):
            pts = [e for e in entries if e["sde"] == sde and e["label"] == label and metric in e]
            pts.sort(key=lambda e: e["nfe"])
            if not pts:
                continue
            ses = [e.get(metric + "_se", float("nan")) for e in pts]
            ax.errorbar(
                [e["nfe"] for e in pts],
                [e[metric] for e in pts],
                yerr=None if all(math.isnan(v) for v in ses) else [1.96 * v for v in ses],
                label=label,
                color=colors[i % len(colors)],
                marker=markers[i % len(markers)],
                markersize=4,
                capsize=2,
                linewidth=1.2,
            )
        if baseline is not None and metric in baseline:
            v, se = baseline[metric], baseline[metric + "_se"]
            ax.axhline(v, color="0.3", linestyle="--", linewidth=1.0, label="exact samples (same n): the floor")
            ax.axhspan(v - 1.96 * se, v + 1.96 * se, color="0.5", alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        if not signed:
            ax.set_yscale("log")
        elif any(e.get(metric, 1) <= 0 for e in entries if e["sde"] == sde and metric in e):
            ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_title(sde.upper() if len(sde) <= 5 else sde)
        ax.set_xlabel("NFE (score evaluations per sample)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(metric)
    handles, names = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, n = ax.get_legend_handles_labels()
        for hh, nn in zip(h, n):
            if nn not in names:
                handles.append(hh)
                names.append(nn)
    if names:
        # Beside the panels, in as many columns as keep it no taller than they are.
        fig.legend(handles, names, loc="center left", ncol=1 + (len(names) - 1) // 16, frameon=False,
                   bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(title + "  (error bars: 95% intervals over runs' standard errors)", fontsize=10)
    savefig(fig, path)


def point_title(p):
    return "{} {}".format("N =" if p[0] == "steps" else "rtol", p[1])


def kept_samples(directory, rows, sde, labels):
    """The first seed's finished runs of `sde`, the labels among them, each label's points (steps, or tolerances) in
    order, and the exact reference samples kept beside them (None if none); None when there are no runs."""
    first_seed = min(r["seed"] for r in rows)
    runs = [r for r in rows if r["sde"] == sde and r["seed"] == first_seed and r["status"] == "ok"]
    used = [l for l in labels if any(r["label"] == l for r in runs)]
    if not runs or not used:
        return None
    order = lambda p: (p[0] != "steps", p[1] if p[0] == "steps" else -p[1])
    points = {l: sorted({point_of(r) for r in runs if r["label"] == l}, key=order) for l in used}
    ref_files = sorted(f for f in os.listdir(os.path.join(directory, "samples")) if f.startswith("reference."))
    reference = np.load(os.path.join(directory, "samples", ref_files[0])) if ref_files else None
    return runs, used, points, reference


def scatter_figure(directory, rows, sde, labels, path, title):
    """One row per sampler configuration: exact samples, then the configuration's runs by step count (or
    tolerance), first seed only."""
    kept = kept_samples(directory, rows, sde, labels)
    if kept is None:
        return False
    runs, used, points, reference = kept
    lim = 1.15 * np.percentile(np.abs(reference), 99.5) if reference is not None else 6.0
    ncols = 1 + max(len(p) for p in points.values())
    fig, axes = plt.subplots(len(used), ncols, figsize=(1.9 * ncols, 2.0 * len(used)), squeeze=False)
    for i, label in enumerate(used):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if j == 0:
                if reference is not None:
                    x = reference[:2000]
                    ax.scatter(x[:, 0], x[:, 1], s=0.6, c="0.35", linewidths=0)
                ax.set_ylabel(label, fontsize=7)
                ax.set_title("exact", fontsize=8)
                continue
            if j - 1 >= len(points[label]):
                ax.axis("off")
                continue
            p = points[label][j - 1]
            match = [r for r in runs if r["label"] == label and point_of(r) == p]
            ax.set_title("{} (NFE {:.0f})".format(point_title(p), match[0]["nfe"]) if match else point_title(p),
                         fontsize=7)
            f = os.path.join(directory, "samples", match[0]["run"] + ".npy") if match else None
            if not f or not os.path.exists(f):
                ax.set_facecolor("0.95")
                continue
            x = np.load(f)
            x = x[np.isfinite(x).all(axis=1)][:2000]
            ax.scatter(x[:, 0], x[:, 1], s=0.6, c="C0", linewidths=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    savefig(fig, path)
    return True


def kept_are_images(directory, rows):
    """True when the samples the study kept for these rows are square grey images (else 2-D points, or none)."""
    kept = [os.path.join(directory, "samples", r["run"] + ".npy") for r in rows]
    kept = [f for f in kept if os.path.exists(f)]
    return bool(kept) and image_side(np.load(kept[0], mmap_mode="r").shape[1]) is not None


def image_side(dim):
    """The side of a square grey image of dimension dim (at least 8 x 8), else None."""
    side = int(round(math.sqrt(dim)))
    return side if side >= 8 and side * side == dim else None


def mosaic(x, side, per_row=4):
    """The first per_row^2 images of x ((n, side^2), values in [-1, 1]) as one array, a pixel of gap between them."""
    count = per_row * per_row
    out = np.ones((per_row * (side + 1) - 1, per_row * (side + 1) - 1))
    for k in range(min(count, len(x))):
        i, j = divmod(k, per_row)
        out[i * (side + 1):i * (side + 1) + side, j * (side + 1):j * (side + 1) + side] = x[k].reshape(side, side)
    return out


def image_figure(directory, rows, sde, labels, path, title):
    """Image data: one row per sampler configuration, 16 images of the exact samples and of each run by step count
    (first seed), from the first images that the study kept (--save-samples)."""
    kept = kept_samples(directory, rows, sde, labels)
    if kept is None:
        return False
    runs, used, points, reference = kept
    ncols = 1 + max(len(p) for p in points.values())
    fig, axes = plt.subplots(len(used), ncols, figsize=(1.6 * ncols, 1.75 * len(used)), squeeze=False)
    for i, label in enumerate(used):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            x, cell_title = None, None
            if j == 0:
                x, cell_title = reference, "exact"
                ax.set_ylabel(label, fontsize=7)
            elif j - 1 < len(points[label]):
                p = points[label][j - 1]
                match = [r for r in runs if r["label"] == label and point_of(r) == p]
                cell_title = "{} (NFE {:.0f})".format(point_title(p), match[0]["nfe"]) if match else point_title(p)
                f = os.path.join(directory, "samples", match[0]["run"] + ".npy") if match else None
                x = np.load(f) if f and os.path.exists(f) else None
            else:
                ax.axis("off")
                continue
            ax.set_title(cell_title, fontsize=7)
            side = image_side(x.shape[1]) if x is not None else None
            if side is None:
                ax.set_facecolor("0.95")
                continue
            ax.imshow(np.clip(mosaic(x, side), -1, 1), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    savefig(fig, path)
    return True


def score_name(score):
    return "exact score" if score == "exact" else os.path.basename(score)


def side_by_side(directory, rows, entries, metrics, sdes, fig_dir):
    """Where a data set ran with two or more scores at the same sample count (a block with `score=exact,net.pt`): one
    table of the cells they share, each metric per score, with the exact-samples floor of that size, and an image
    figure of their first images one above the other. Returns the report's lines (none when no cell is shared)."""
    md = []
    groups = OrderedDict()
    for e in entries:
        if not is_baseline(e):
            groups.setdefault((e["data"], e["n"]), OrderedDict()).setdefault((e["sde"], e["label"], e["point"]), {})[
                e["score"]] = e
    shown = metrics[:3]
    for (data, n), cells in groups.items():
        shared = OrderedDict((k, v) for k, v in cells.items() if len(v) > 1)
        if not shared:
            continue
        scores = list(OrderedDict.fromkeys(sc for v in shared.values() for sc in v))
        if not md:
            md.append("\n## Exact and learned scores side by side\n")
            md.append("The same sampler configurations with each score, at the same sample count and seed (the same "
                      "prior draws and Brownian path): the difference between the rows of a configuration is the "
                      "score's error, seen through the sampler. Mean ± standard error.\n")
        md.append("\n### {}, {} samples per run\n".format(data, n))
        md.append("| SDE | configuration | steps | NFE | " +
                  " | ".join("{} ({})".format(m, score_name(sc)) for m in shown for sc in scores) + " |")
        md.append("|---|---|---:|---:|" + "---:|" * (len(shown) * len(scores)))
        floor = [e for e in entries if is_baseline(e) and e["data"] == data and e["n"] == n]
        if floor:
            md.append("| - | exact samples (the floor) | - | 0 | " + " | ".join(
                fmt(floor[0].get(m), floor[0].get(m + "_se")) for m in shown for _ in scores) + " |")
        for (sde, label, point), by_score in shared.items():
            nfes = "/".join(fmt(by_score[sc]["nfe"]) for sc in scores if sc in by_score)
            md.append("| {} | {} | {} | {} | ".format(sde, label, point[1], nfes) + " | ".join(
                fmt(by_score[sc].get(m), by_score[sc].get(m + "_se")) if sc in by_score else "-"
                for m in shown for sc in scores) + " |")
        # The images of each shared configuration with each score, one row per (configuration, score).
        pairs = OrderedDict.fromkeys((label, sc) for (_, label, _), v in shared.items() for sc in scores if sc in v)
        paired_rows = []
        for r in rows:
            if (not is_baseline(r) and r["data"] == data and r["n"] == n and (r["label"], r["score"]) in pairs and
                    (r["sde"], r["label"], point_of(r)) in shared):
                paired_rows.append(dict(r, label="{}, {}".format(r["label"], score_name(r["score"]))))
        labels = ["{}, {}".format(label, score_name(sc)) for label, sc in pairs]
        if kept_are_images(directory, paired_rows):
            for sde in sdes:
                path = os.path.join(fig_dir, "side_by_side_{}_n{}_{}.png".format(
                    os.path.splitext(os.path.basename(data))[0], n, sde))
                if image_figure(directory, paired_rows, sde, labels, path,
                                "{}, {}: the first 16 images with each score (first seed)".format(data, sde)):
                    md.append("\n![side by side {}](figures/{})\n".format(sde, os.path.basename(path)))
    return md


def main():
    directory, command, version = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    rows = results["rows"]
    columns = results.get("columns", [])
    metrics = [c for c in columns if c + "_se" in columns]
    if not rows:
        sys.stderr.write("report: {} has no finished runs yet\n".format(os.path.join(directory, "results.json")))
        sys.exit(2)
    entries = aggregate(rows, metrics)
    sdes = list(OrderedDict.fromkeys(r["sde"] for r in rows if not is_baseline(r)))
    labels = list(OrderedDict.fromkeys(r["label"] for r in rows if not is_baseline(r)))
    # One section per (data, score, sample count): a block may run a costly score, or the same cells, at its own n.
    sizes = list(OrderedDict.fromkeys(r["n"] for r in rows))
    sections = list(OrderedDict.fromkeys((r["data"], r["score"], r["n"]) for r in rows if not is_baseline(r)))
    fig_dir = os.path.join(directory, "figures")
    os.makedirs(fig_dir, exist_ok=True)

    md = []
    ctx = results.get("context", {})
    md.append("# Study report: {}\n".format(os.path.basename(os.path.normpath(directory))))
    md.append(
        "Made by `{}` (scoresde {}, matplotlib {}) from `results.json`, which `{}` wrote "
        "(scoresde {} at {}, {}, {} threads, {}).\n".format(
            command,
            version,
            matplotlib.__version__,
            results.get("command", "scoresde study"),
            ctx.get("version", "?"),
            ctx.get("git_revision", "?"),
            ctx.get("compiler", "?"),
            ctx.get("threads", "?"),
            ctx.get("date_utc", "?"),
        )
    )
    nseeds = len({r["seed"] for r in rows})
    md.append(
        "{} runs, {} samples each, {} replicate seed(s) per cell; values are means over seeds with the standard error "
        "of that mean (from each run's own standard error). Rerun the study with "
        "`scoresde study --config {}/study.ini --out NEW_DIR`.\n".format(
            len(rows), " or ".join(str(n) for n in sizes), nseeds, directory
        )
    )
    primary = next((m for m in PRIMARY_ORDER if m in metrics), metrics[0] if metrics else None)
    md.extend(side_by_side(directory, rows, entries, metrics, sdes, fig_dir))

    for data, score, n in sections:
        sub = [e for e in entries if e["data"] == data and e["score"] == score and e["n"] == n and not is_baseline(e)]
        sub_rows = [r for r in rows if r["data"] == data and r["score"] == score and r["n"] == n]
        base = [e for e in entries if e["data"] == data and is_baseline(e) and e["n"] == n]
        baseline = base[0] if base else None
        tag = "" if len(sections) == 1 else "_{}_{}{}".format(
            os.path.splitext(os.path.basename(data))[0], os.path.splitext(os.path.basename(score))[0],
            "" if len(sizes) == 1 else "_n{}".format(n))
        heading = ("{} with the exact score".format(data) if score == "exact" else
                   "{} with the learned score {}".format(data, os.path.basename(score)))
        if len(sizes) > 1:
            heading += ", {} samples per run".format(n)
        md.append("\n## {}\n".format(heading))
        if primary:
            md.append("\n### Best sampler per NFE budget ({}, {})\n".format(
                primary, "higher is better" if primary in HIGHER_IS_BETTER else "closer to 0 is better"))
            if baseline is not None and primary in baseline:
                md.append("Exact samples of the same size score {} against the same reference: the floor no "
                          "sampler can beat by more than its noise.\n".format(
                              fmt(baseline[primary], baseline[primary + "_se"])))
            max_nfe = max((e["nfe"] for e in sub if not math.isnan(e["nfe"])), default=0)
            budgets = []
            for b in [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]:
                budgets.append(b)
                if b >= max_nfe:
                    break
            md.append("| NFE budget | " + " | ".join(s for s in sdes) + " |")
            md.append("|---:|" + "---|" * len(sdes))
            for b in budgets:
                cells = []
                for sde in sdes:
                    cands = [e for e in sub if e["sde"] == sde and primary in e and e["nfe"] <= b * 1.0001]
                    best = None
                    for e in cands:
                        if best is None or better(primary, e[primary], best[primary]):
                            best = e
                    if best is None:
                        cells.append("-")
                        continue
                    # Configurations whose value is within two combined standard errors of the best one.
                    ties = {e["label"] for e in cands if e is not best and e["label"] != best["label"] and
                            abs(abs(e[primary]) - abs(best[primary])) <=
                            2 * math.hypot(e[primary + "_se"], best[primary + "_se"])}
                    cells.append("{} ({} {}; NFE {:.0f}): {}{}".format(
                        best["label"], "N =" if best["point"][0] == "steps" else "rtol", best["point"][1],
                        best["nfe"], fmt(best[primary], best[primary + "_se"]),
                        "; within 2 SE: {}".format(", ".join(sorted(ties))) if ties else ""))
                md.append("| ≤ {} | ".format(b) + " | ".join(cells) + " |")
            md.append("")
        for m in [primary, "path_error"] if primary != "path_error" else [primary]:
            if m not in metrics:
                continue
            groups = paired_comparisons(sub_rows, m)
            if not groups:
                continue
            md.append("\n### Paired differences at equal NFE ({})\n".format(m))
            md.append(
                "Configurations at the same NFE, ordered best first ({}). Two configurations are compared over the "
                "replicate seeds both ran: each seed gives both the same prior draws and, with `--noise brownian_tree`, "
                "the same Brownian path, so the per-seed difference d_s = {} is free of most sampling noise. A "
                "difference is marked significant when |mean d| > t_0.975,K-1 · sd(d)/√K (paired t-test, two-sided, "
                "5%, K seeds ≥ 2; no correction for the number of pairs). Mean ± SE over seeds.{}\n".format(
                    "higher is better" if m in HIGHER_IS_BETTER else "closer to 0 is better",
                    "m_A(s) − m_B(s) (negated: higher is better)" if m in HIGHER_IS_BETTER else "|m_A(s)| − |m_B(s)|",
                    " Path errors are against dopri5 for probability-flow samplers [path] and against the same sampler "
                    "refined ×16 on the same Brownian path for SDE samplers [strong]: distances to different limits, "
                    "compared within a kind only." if m in PATH_METRICS else ""))
            md.append("| SDE | NFE | configuration | {} | significantly better than | significantly worse than |".format(m))
            md.append("|---|---:|---|---:|---|---|")
            for (_, _, sde, nfe, kind, _), group in groups.items():
                for c in group:
                    md.append("| {} | {:.0f} | {} | {} | {} | {} |".format(
                        sde, nfe, cell_name(c) + (" [{}]".format(kind) if kind else ""), fmt(c["mean"], None if math.isnan(c["se"]) else c["se"]),
                        ", ".join(x["label"] for x in c["better"]) or "-",
                        ", ".join(x["label"] for x in c["worse"]) or "-"))
            md.append("")
        for m in metrics:
            if not any(m in e for e in sub):
                continue  # not computed for this data (a mixture-only metric on data without a density)
            path = os.path.join(fig_dir, "{}{}.png".format(m, tag))
            metric_figure(sub, m, sdes, labels, path, "{}: {} against NFE".format(heading, m), baseline)
            md.append("\n### {} against NFE\n\n![{}](figures/{})\n".format(m, m, os.path.basename(path)))
        samples_dir = os.path.join(directory, "samples")
        if os.path.isdir(samples_dir) and any(f.endswith(".npy") for f in os.listdir(samples_dir)):
            images = kept_are_images(directory, sub_rows)
            for sde in sdes:
                path = os.path.join(fig_dir, "samples_{}{}.png".format(sde, tag))
                if images:
                    drawn = image_figure(directory, sub_rows, sde, labels, path,
                                         "{}, {}: the first 16 images of the first seed".format(heading, sde))
                else:
                    drawn = scatter_figure(directory, sub_rows, sde, labels, path,
                                           "{}, {}: samples of the first seed (grey: exact)".format(heading, sde))
                if drawn:
                    md.append("\n### Samples, {}\n\n![samples {}](figures/{})\n".format(sde, sde, os.path.basename(path)))
        md.append("\n### All cells\n")
        shown = metrics[:4]
        md.append("| SDE | sampler | steps / rtol | NFE | " + " | ".join(shown) + " | diverged |")
        md.append("|---|---|---:|---:|" + "---:|" * len(shown) + "---:|")
        for e in ([baseline] if baseline else []) + sub:
            md.append(
                "| {} | {} | {} | {} | {} | {} |".format(
                    e["sde"] or "-", e["label"], e["point"][1] if e["point"][0] != "exact" else "-", fmt(e["nfe"]),
                    " | ".join(fmt(e.get(m), e.get(m + "_se")) for m in shown),
                    "{}/{}".format(e["diverged"], e["runs"]) if e["diverged"] else "",
                )
            )
        # Why some cells are empty (the exact law does not apply to a run), once per distinct note.
        notes = OrderedDict()
        for r in sub_rows:
            if r.get("note"):
                notes.setdefault(r["note"], []).append(r["run"])
        if notes:
            md.append("\n### Notes\n")
            for note, runs in notes.items():
                md.append("- {} ({} run{}, e.g. `{}`)".format(note, len(runs), "" if len(runs) == 1 else "s", runs[0]))
        failures = [r for r in sub_rows if r["status"] != "ok"]
        if failures:
            md.append("\n### Runs that diverged\n")
            for r in failures:
                md.append("- `{}`: {}".format(r["run"], r.get("failure", "")))
    text = "\n".join(md) + "\n"
    atomic_write(os.path.join(directory, "report.md"), lambda tmp: open(tmp, "w").write(text))
    print("report: wrote {} and {} figures in {}".format(
        os.path.join(directory, "report.md"), len([f for f in os.listdir(fig_dir) if f.endswith(".png")]), fig_dir))


main()
