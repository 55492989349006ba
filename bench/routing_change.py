#!/usr/bin/env python3
"""How much MoE routing changes between adjacent denoising steps, per layer.

Standard library only. Runs the CLI (build/moe-diffuse) once per case with
--moe-stats, reads the routes file it writes beside the statistics
(FILE.routes.json, format "moe-diffuse-routes", see docs/moe.md "Route
replay"), and prints a Markdown table. With --routes it reads existing
routes files instead of running anything.

  bench/routing_change.py                                  # demo model, 2 cases, 20 steps
  bench/routing_change.py -m /tmp/segmoe --size 256 --steps 8 --case "a cat@1" --case "a lighthouse@2"
  bench/routing_change.py --routes a.routes.json b.routes.json --per-layer

Definitions (per MoE layer; "step t" runs over the steps recorded, t >= 1
compares step t with step t-1):

* needed set N(t): the experts whose weights the layer needs at step t, the
  union of every chosen expert over all rows (token routing) or over both
  guidance halves (sequence routing).
* set changed: the fraction of steps t >= 1 with N(t) != N(t-1).
* new experts: |N(t) minus N(t-1)|, averaged over t >= 1: the loads an
  expert cache makes when it holds exactly the previous step's choice of
  that layer.
* slots changed: the fraction of chosen (row, slot) pairs at t >= 1 whose
  expert was not among the same row's experts at t-1 (order within a row
  ignored). A "row" is a token row of the U-Net call for token routing
  (both guidance halves), a guidance half for sequence routing.
* used: |N(t)|, averaged over all steps.
For each case the table gives mean / min / max over layers, and the sums
over all layers per step (loads and experts needed).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

FORMAT = "moe-diffuse-routes"
DEFAULT_CASES = [
    ("a large red circle on the left on a blue background", 1),
    ("a small yellow star at the top on a gray background", 2),
]


class Failure(Exception):
    pass


def parse_case(text):
    """'PROMPT@SEED' -> (prompt, seed)."""
    prompt, sep, seed = text.rpartition("@")
    if not sep or not prompt:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PROMPT@SEED")
    try:
        return prompt, int(seed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the seed {seed!r} is not an integer")


def load_routes(path):
    """Reads a routes file: (layer names, expert counts, routes kind, steps)
    where steps[t][l] is a list of rows, each a frozenset of experts."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise Failure(f"{path}: cannot read: {e.strerror}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Failure(f"{path}: not JSON: {e}")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise Failure(f"{path}: not a routes file (\"format\" is not \"{FORMAT}\")")
    if doc.get("version") != 1:
        raise Failure(f"{path}: routes version {doc.get('version')!r}; this script reads version 1")
    layers, routes = doc.get("layers"), doc.get("routes")
    if not isinstance(layers, list) or not layers or not isinstance(routes, list):
        raise Failure(f"{path}: \"layers\" and \"routes\" must be non-empty lists")
    names, nexp = [], []
    for i, l in enumerate(layers):
        if not isinstance(l, dict) or not isinstance(l.get("name"), str) or \
                not isinstance(l.get("experts"), int):
            raise Failure(f"{path}: layers[{i}] needs \"name\" and \"experts\"")
        names.append(l["name"])
        nexp.append(l["experts"])
    kinds, steps = set(), []
    for t, step in enumerate(routes):
        if not isinstance(step, list) or len(step) != len(names):
            raise Failure(f"{path}: routes[{t}] must hold one entry per layer ({len(names)})")
        row = []
        for l, e in enumerate(step):
            where = f"{path}: routes[{t}][{l}]"
            if isinstance(e, dict) and isinstance(e.get("experts"), list):
                kinds.add("sequence")
                groups = e["experts"]
                if not all(isinstance(g, list) and all(isinstance(x, int) for x in g) for g in groups):
                    raise Failure(f"{where}: \"experts\" must be lists of integers")
                rows = [frozenset(g) for g in groups]
            elif isinstance(e, dict) and isinstance(e.get("k"), int) and isinstance(e.get("choices"), str):
                kinds.add("token")
                k, c = e["k"], e["choices"]
                if k < 1 or len(c) % k:
                    raise Failure(f"{where}: \"choices\" has {len(c)} characters, not a multiple of k = {k}")
                try:
                    rows = [frozenset(int(ch, 16) for ch in c[i:i + k] if ch != "-")
                            for i in range(0, len(c), k)]
                except ValueError:
                    raise Failure(f"{where}: \"choices\" holds a character that is not a hex digit or '-'")
            else:
                raise Failure(f"{where}: neither a sequence entry nor a token entry")
            if any(x < 0 or x >= nexp[l] for r in rows for x in r):
                raise Failure(f"{where}: an expert is out of range 0..{nexp[l] - 1}")
            row.append(rows)
        steps.append(row)
    if len(steps) < 2:
        raise Failure(f"{path}: {len(steps)} step(s) recorded; adjacent steps need at least 2")
    kind = "/".join(sorted(kinds))
    return names, nexp, kind, steps


def layer_metrics(steps, l, path, name):
    changed = new = slots_changed = slots = 0
    used = 0
    prev = None
    by_t = []  # per t >= 1: (set changed, new experts, slots changed, slots)
    for t, step in enumerate(steps):
        rows = step[l]
        need = frozenset().union(*rows)
        used += len(need)
        if prev is not None:
            prev_rows, prev_need = prev
            if len(prev_rows) != len(rows):
                raise Failure(f"{path}: layer {name}: {len(prev_rows)} rows at step {t - 1}, "
                              f"{len(rows)} at step {t}: rows cannot be matched")
            sc = st = 0
            for a, b in zip(prev_rows, rows):
                st += len(b)
                sc += len(b - a)
            by_t.append((need != prev_need, len(need - prev_need), sc, st))
            changed += need != prev_need
            new += len(need - prev_need)
            slots += st
            slots_changed += sc
        prev = (rows, need)
    n = len(steps) - 1
    return {
        "changed": changed / n,
        "new": new / n,
        "slots": slots_changed / slots if slots else 0.0,
        "used": used / len(steps),
        "by_t": by_t,
    }


def analyse(path):
    names, nexp, kind, steps = load_routes(path)
    per = [layer_metrics(steps, l, path, names[l]) for l in range(len(names))]
    return {"names": names, "experts": nexp, "kind": kind, "steps": len(steps), "per": per}


def mmm(values, fmt):
    return f"{fmt.format(sum(values) / len(values))} / {fmt.format(min(values))} / {fmt.format(max(values))}"


def print_table(results):
    print("| model | case | routing | layers x experts | steps | set changed (fraction of t>=1) "
          "| slots changed | new experts per layer-step | used experts per layer-step "
          "| loads per step, all layers | experts needed per step, all layers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, case, r in results:
        per = r["per"]
        exps = sorted(set(r["experts"]))
        ex = "/".join(str(e) for e in exps)
        print(f"| {label} | {case} | {r['kind']} | {len(per)} x {ex} | {r['steps']} "
              f"| {mmm([p['changed'] for p in per], '{:.2f}')} "
              f"| {mmm([p['slots'] for p in per], '{:.3f}')} "
              f"| {mmm([p['new'] for p in per], '{:.2f}')} "
              f"| {mmm([p['used'] for p in per], '{:.2f}')} "
              f"| {sum(p['new'] for p in per):.2f} "
              f"| {sum(p['used'] for p in per):.2f} |")
    print("\nCells with three figures: mean / min / max over the layers.")


def print_per_layer(label, case, r):
    print(f"\n#### {label}, {case}: per layer\n")
    print("| layer | experts | set changed | slots changed | new experts per step | used experts per step |")
    print("|---|---|---|---|---|---|")
    for name, e, p in zip(r["names"], r["experts"], r["per"]):
        print(f"| {name} | {e} | {p['changed']:.2f} | {p['slots']:.3f} | {p['new']:.2f} | {p['used']:.2f} |")


def print_per_step(label, case, r):
    per = r["per"]
    print(f"\n#### {label}, {case}: per step (all layers)\n")
    print("| step t | layers whose set changed | slots changed | loads (new experts, all layers) |")
    print("|---|---|---|---|")
    for i in range(r["steps"] - 1):
        col = [p["by_t"][i] for p in per]
        st = sum(c[3] for c in col)
        print(f"| {i + 1} | {sum(c[0] for c in col)} of {len(per)} "
              f"| {sum(c[2] for c in col) / st if st else 0:.3f} | {sum(c[1] for c in col)} |")


def run_case(a, prompt, seed, tmp, idx):
    stats = os.path.join(tmp, f"case{idx}.json")
    cmd = [a.cli, "-p", prompt, "--seed", str(seed), "--steps", str(a.steps),
           "-o", os.path.join(tmp, f"image{idx}.png"), "--moe-stats", stats, "-q"]
    if a.model:
        cmd += ["-m", a.model]
    if a.size:
        cmd += ["-W", str(a.size), "-H", str(a.size)]
    cmd += shlex.split(a.extra)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except FileNotFoundError:
        raise Failure(f"{a.cli}: no such program (build first, or give --cli / --build)")
    except subprocess.TimeoutExpired:
        raise Failure(f"{shlex.join(cmd)}: still running after {a.timeout} s (--timeout)")
    if r.returncode:
        tail = "\n".join(r.stderr.strip().splitlines()[-5:])
        raise Failure(f"{shlex.join(cmd)}: exit {r.returncode}: {tail}")
    print(f"routing_change: case {idx + 1}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    routes = os.path.join(tmp, f"case{idx}.routes.json")
    if not os.path.exists(routes):
        raise Failure(f"{shlex.join(cmd)}: wrote no routes file {routes}: {r.stderr.strip()}")
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        keep = os.path.join(a.keep, f"case{idx + 1}.routes.json")
        with open(routes, "rb") as s, open(keep, "wb") as d:
            d.write(s.read())
    return routes


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Definitions of the columns: see the top of this file (or docs/moe.md, "
               "\"Routing change between steps\").",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build folder (default: build)")
    ap.add_argument("--cli", help="the moe-diffuse program (default: BUILD/moe-diffuse)")
    ap.add_argument("-m", "--model", help="model folder or file (default: the CLI's, the demo model)")
    ap.add_argument("--label", help="the model's name in the table (default: the folder's name)")
    ap.add_argument("--case", action="append", type=parse_case, metavar="PROMPT@SEED",
                    help="a prompt and seed to run; repeat for more (default: two demo-model prompts, "
                         "seeds 1 and 2)")
    ap.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    ap.add_argument("--size", type=int, help="width and height in pixels (default: the model's)")
    ap.add_argument("--extra", default="", help="more CLI flags, one shell-quoted string")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per CLI run (default 3600)")
    ap.add_argument("--keep", metavar="DIR", help="copy each run's routes file into DIR")
    ap.add_argument("--routes", nargs="+", metavar="FILE",
                    help="analyse these routes files; run nothing")
    ap.add_argument("--per-layer", action="store_true", help="also print a table per case and layer")
    ap.add_argument("--per-step", action="store_true",
                    help="also print a table per case and step t (sums over the layers)")
    a = ap.parse_args()
    if a.steps < 2 and not a.routes:
        ap.error("--steps must be at least 2: adjacent steps are compared")
    if a.size is not None and (a.size < 8 or a.size % 8):
        ap.error("--size must be a multiple of 8, at least 8")
    a.cli = os.path.abspath(a.cli or os.path.join(a.build, "moe-diffuse"))
    label = a.label or (os.path.basename(os.path.normpath(a.model)) if a.model else "demo")
    results = []
    try:
        if a.routes:
            for p in a.routes:
                results.append((a.label or "-", os.path.basename(p), analyse(p)))
        else:
            if not os.access(a.cli, os.X_OK):
                raise Failure(f"{a.cli}: not an executable (build first, or give --cli / --build)")
            cases = a.case or DEFAULT_CASES
            with tempfile.TemporaryDirectory(prefix="routing_change.") as tmp:
                for i, (prompt, seed) in enumerate(cases):
                    routes = run_case(a, prompt, seed, tmp, i)
                    results.append((label, f"\"{prompt}\", seed {seed}", analyse(routes)))
    except Failure as e:
        sys.exit(f"routing_change: {e}")
    except OSError as e:  # --keep, the temporary folder
        sys.exit(f"routing_change: {e}")
    except KeyboardInterrupt:
        sys.exit("routing_change: interrupted")
    print_table(results)
    if a.per_layer:
        for label_, case, r in results:
            print_per_layer(label_, case, r)
    if a.per_step:
        for label_, case, r in results:
            print_per_step(label_, case, r)


if __name__ == "__main__":
    main()
