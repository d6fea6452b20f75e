#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

Nodes are each crate's top-level modules (`src/foo.rs` or `src/foo/`); an edge is any
`crate::other` path in non-test code (comments and `#[cfg(test)] mod tests` left out).
Crates themselves cannot form circles (Cargo refuses). Run by .ci/run.
Usage: scripts/check-import-cycles.py [REPO]"""
import os, re, sys, subprocess
root = sys.argv[1] if len(sys.argv) > 1 else "."
files = subprocess.run(["git", "-C", root, "ls-files", "*.rs"], capture_output=True, text=True).stdout.split()
crates = {}
for f in files:
    parts = f.split("/")
    if "src" not in parts: continue
    i = parts.index("src"); crate = "/".join(parts[:i])
    rel = parts[i+1:]
    if rel[0] == "bin" or rel[-1] in ("lib.rs", "main.rs"): continue
    mod = rel[0][:-3] if rel[0].endswith(".rs") else rel[0]
    crates.setdefault(crate, {}).setdefault(mod, []).append(f)
found = 0
for crate, mods in sorted(crates.items()):
    graph = {m: set() for m in mods}
    for m, fs in mods.items():
        for f in fs:
            text = open(os.path.join(root, f)).read()
            # drop #[cfg(test)] mod tests { ... } tails: approximate by cutting at the marker
            cut = text.find("#[cfg(test)]\nmod tests")
            if cut >= 0: text = text[:cut]
            if f.endswith("/tests.rs"): continue
            text = re.sub(r"//[^\n]*", "", text)
            for dep in re.findall(r"crate::(\w+)", text):
                if dep in graph and dep != m: graph[m].add(dep)
            for group in re.findall(r"use crate::\{([^}]*)\}", text):
                for dep in re.findall(r"(?:^|,)\s*(\w+)", group):
                    if dep in graph and dep != m: graph[m].add(dep)
    # Tarjan SCC
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
    def strong(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index: strong(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index: strong(v)
    for c in sccs:
        found += 1
        print(f"{crate or '.'}: circle among {', '.join(c)}")
        for v in c:
            print("   ", v, "->", ", ".join(sorted(w for w in graph[v] if w in c)))
print(f"{found} circle(s)")
sys.exit(1 if found else 0)
