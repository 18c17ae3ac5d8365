#!/usr/bin/env python3
"""Turns bench_prune.sh's prune.jsonl into prune.md (tables), prune.json and PNG plots."""
import json
import os
import shutil
import subprocess
import sys

TARGETS = ["0.5", "0.6", "0.7", "0.8", "2:4", "4:8"]


def load(out):
    records = [json.loads(line) for line in open(os.path.join(out, "prune.jsonl")) if line.strip()]
    by_model = {}
    for r in records:
        by_model.setdefault(r["model"], {})[r["label"]] = r
    return records, by_model


def fmt(x):
    return "—" if x is None else ("%.2f" % x if x < 1000 else "%.3g" % x)


def baseline_table(model, runs):
    methods = []
    for label in runs:
        method = label.split()[0]
        if label != "dense" and len(label.split()) == 2 and method not in methods:
            methods.append(method)
    lines = ["| method | " + " | ".join("%s%%" % int(float(t) * 100) if ":" not in t else t for t in TARGETS) + " |",
             "|---|" + "---|" * len(TARGETS)]
    for m in methods:
        cells = [fmt(runs.get("%s %s" % (m, t), {}).get("perplexity")) for t in TARGETS]
        best = [min((runs.get("%s %s" % (k, t), {}).get("perplexity") or 1e300) for k in methods) for t in TARGETS]
        cells = ["**%s**" % c if runs.get("%s %s" % (m, t), {}).get("perplexity") == b else c
                 for c, t, b in zip(cells, TARGETS, best)]
        lines.append("| %s | %s |" % (m, " | ".join(cells)))
    return "\n".join(lines)


def extra_table(runs, suffixes):
    lines = ["| run | perplexity | same method, no option | change |", "|---|---|---|---|"]
    for label, r in runs.items():
        parts = label.split()
        if len(parts) < 3 or parts[2] not in suffixes:
            continue
        base = runs.get("%s %s" % (parts[0], parts[1]), {}).get("perplexity")
        change = "%+.1f%%" % (100 * (r["perplexity"] / base - 1)) if base else "—"
        lines.append("| %s | %s | %s | %s |" % (label, fmt(r["perplexity"]), fmt(base), change))
    return "\n".join(lines)


def plot(out, model, runs):
    if not shutil.which("gnuplot"):
        return None
    methods = sorted({l.split()[0] for l in runs if l != "dense" and len(l.split()) == 2})
    data = os.path.join(out, "%s.dat" % model)
    with open(data, "w") as f:
        for m in methods:
            f.write("# %s\n" % m)
            for t in TARGETS[:4]:
                r = runs.get("%s %s" % (m, t))
                if r:
                    f.write("%s %g\n" % (t, r["perplexity"]))
            f.write("\n\n")
    png = os.path.join(out, "%s.png" % model)
    dense = runs.get("dense", {}).get("perplexity")
    script = ["set terminal png size 800,520", "set output '%s'" % png,
              "set title 'crepe prune: %s (unstructured, 128x256 calibration tokens)'" % model,
              "set xlabel 'sparsity'", "set ylabel 'perplexity (log scale)'", "set logscale y", "set key left top",
              "set grid"]
    curves = ["'%s' index %d with linespoints lw 2 title '%s'" % (data, i, m) for i, m in enumerate(methods)]
    if dense:
        curves.append("%g with lines dt 2 lc 'black' title 'dense'" % dense)
    script.append("plot [0.45:0.85] " + ", ".join(curves))
    subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)
    os.remove(data)
    return png


def main(out):
    records, by_model = load(out)
    md = ["# crepe prune benchmark", ""]
    for model, runs in by_model.items():
        dense = runs.get("dense", {})
        md += ["## %s" % model, "",
               "Dense perplexity %s over %s windows of 256 tokens." % (fmt(dense.get("perplexity")), dense.get("eval_windows")),
               "", baseline_table(model, runs), ""]
        comp = extra_table(runs, {"permute", "permute+dsnot", "owl", "alpha", "dlp", "dsnot", "dsnot-all", "reconstruct"})
        if comp.count("\n") > 1:
            md += ["Composition:", "", comp, ""]
        self_cal = extra_table(runs, {"self-calibrated"})
        if self_cal.count("\n") > 1:
            md += ["Self-generated calibration (sequences sampled from the model) against TinyStories text:", "", self_cal, ""]
        png = plot(out, model, runs)
        if png:
            md += ["![%s](%s)" % (model, os.path.basename(png)), ""]
    open(os.path.join(out, "prune.md"), "w").write("\n".join(md))
    json.dump(records, open(os.path.join(out, "prune.json"), "w"), indent=1)
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench-results/prune")
