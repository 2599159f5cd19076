#!/usr/bin/env python3
"""Turn a course tree made by gen-tree.py into a deterministic "v2": scattered edits.

Usage: edit-tree.py TREE [--fraction F] [--seed S] [--min-edit B] [--max-edit B]
                         [--resize-share R] [--small-edits N] [--mtime T] [--edits N]

Models a course update: re-encoded segments spread across the large media files plus
a few corrected pages. Edits are made IN PLACE in TREE (keep a copy of v1 first).

Large files (>= 1 MiB, the media): about F (default 0.01) of the tree's bytes are
replaced by --edits N edits (default: F * tree bytes / mean edit size, e.g. about 280
edits at 1 GiB), each --min-edit..--max-edit bytes (default 25..50 KiB) of fresh
random bytes at a random offset. Files get edits in proportion to their size; edits in
one file are at least 512 KiB apart (scattered, so no two share a content-defined
chunk). --resize-share R (default 0.2) of the edits replace their L bytes with L +/- up
to 4 KiB, so those files' sizes change slightly and later bytes shift (which a fixed
block grid would not survive, but content-defined chunking and rsync's rolling checksum
do); the rest overwrite in place.

Small files: --small-edits N HTML pages (default: 1 % of them, at least 5) get one
48-byte run of text replaced by different text of the same length.

Every edited file gets mtime --mtime (default 1700086400, one day after gen-tree.py's
fixed mtime), so size/mtime quick checks (rsync, shanlu publish) see the change.
Edited media files are rewritten to a temporary file and renamed over the original.

Prints a JSON summary on stdout. Same arguments and same input tree -> same output,
byte for byte (random.Random only; no os.urandom).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

LARGE = 1 << 20
BLOCK = 4 << 20
MIN_GAP = 512 << 10
RESIZE_MAX = 4096
SMALL_RUN = 48
SMALL_TEXT = b"[Revised edition: this exercise was corrected.]"  # 47 bytes, padded below


def list_files(tree: str) -> list[tuple[str, int]]:
    out = []
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            out.append((os.path.relpath(p, tree), os.path.getsize(p)))
    out.sort()
    return out


def rewrite(path: str, edits: list[tuple[int, int, bytes]]) -> None:
    """Copy path to a temp file applying edits (offset, removed_len, new_bytes), rename."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".edit-tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        pos = 0
        for off, rlen, data in edits:
            left = off - pos
            while left > 0:
                buf = src.read(min(BLOCK, left))
                if not buf:
                    raise RuntimeError(f"{path}: short read")
                dst.write(buf)
                left -= len(buf)
            dst.write(data)
            src.seek(rlen, os.SEEK_CUR)
            pos = off + rlen
        while True:
            buf = src.read(BLOCK)
            if not buf:
                break
            dst.write(buf)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tree")
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=20240602)
    ap.add_argument("--min-edit", type=int, default=25 * 1024)
    ap.add_argument("--max-edit", type=int, default=50 * 1024)
    ap.add_argument("--resize-share", type=float, default=0.2)
    ap.add_argument("--small-edits", type=int, default=None)
    ap.add_argument("--edits", type=int, default=None)
    ap.add_argument("--mtime", type=int, default=1_700_086_400)
    a = ap.parse_args()

    if not os.path.isdir(a.tree):
        ap.error(f"{a.tree} is not a directory")
    if not (0 < a.fraction <= 0.2):
        ap.error("--fraction must be in (0, 0.2]")
    if not (RESIZE_MAX < a.min_edit <= a.max_edit <= MIN_GAP // 2):
        ap.error(f"need {RESIZE_MAX} < --min-edit <= --max-edit <= {MIN_GAP // 2}")
    if not (0 <= a.resize_share <= 1):
        ap.error("--resize-share must be in 0..1")

    t0 = time.monotonic()
    files = list_files(a.tree)
    tree_bytes = sum(s for _, s in files)
    large = [(p, s) for p, s in files if s >= LARGE]
    small_html = [p for p, s in files if s < LARGE and p.endswith(".html") and s >= 4 * SMALL_RUN]
    if not large:
        ap.error("no files >= 1 MiB to edit (make the tree with gen-tree.py --media N, N >= 1)")

    rng = random.Random(a.seed)
    mean = (a.min_edit + a.max_edit) / 2
    n_edits = a.edits if a.edits is not None else max(1, round(a.fraction * tree_bytes / mean))

    # Place edits: file chosen by size, offset uniform, >= MIN_GAP from the file's other edits.
    weights = [s for _, s in large]
    placed: dict[str, list[tuple[int, int]]] = {p: [] for p, _ in large}
    sizes = dict(large)
    tries = 0
    while sum(len(v) for v in placed.values()) < n_edits:
        tries += 1
        if tries > n_edits * 200:
            print("edit-tree: could not place all edits (files too small for that many); "
                  f"placed {sum(len(v) for v in placed.values())}", file=sys.stderr)
            break
        p = rng.choices([q for q, _ in large], weights)[0]
        ln = rng.randint(a.min_edit, a.max_edit)
        if sizes[p] < ln + 2 * MIN_GAP:
            continue
        off = rng.randrange(MIN_GAP // 2, sizes[p] - ln - MIN_GAP // 2)
        if any(off < o + l + MIN_GAP and o < off + ln + MIN_GAP for o, l in placed[p]):
            continue
        placed[p].append((off, ln))

    n_large = n_resized = written = removed = 0
    changed_files = 0
    for p, _ in large:
        if not placed[p]:
            continue
        edits = []
        for off, ln in sorted(placed[p]):
            new_len = ln
            if rng.random() < a.resize_share:
                new_len = ln + rng.choice((-1, 1)) * rng.randint(1, RESIZE_MAX)
                n_resized += 1
            edits.append((off, ln, rng.randbytes(new_len)))
            written += new_len
            removed += ln
            n_large += 1
        full = os.path.join(a.tree, p)
        rewrite(full, edits)
        os.utime(full, (a.mtime, a.mtime))
        changed_files += 1

    n_small = a.small_edits if a.small_edits is not None else max(5, len(small_html) // 100)
    n_small = min(n_small, len(small_html))
    for p in sorted(rng.sample(small_html, n_small)):
        full = os.path.join(a.tree, p)
        with open(full, "rb") as f:
            data = bytearray(f.read())
        off = rng.randrange(len(data) // 4, len(data) - len(data) // 4 - SMALL_RUN)
        text = (SMALL_TEXT + b" " * SMALL_RUN)[:SMALL_RUN]
        if data[off:off + SMALL_RUN] == text:  # already this text: vary it
            text = text[::-1]
        data[off:off + SMALL_RUN] = text
        with open(full, "wb") as f:
            f.write(data)
        os.utime(full, (a.mtime, a.mtime))
        written += SMALL_RUN
        removed += SMALL_RUN
        changed_files += 1

    new_bytes = sum(os.path.getsize(os.path.join(a.tree, p)) for p, _ in files)
    summary = {
        "tree_bytes_v1": tree_bytes,
        "tree_bytes_v2": new_bytes,
        "files": len(files),
        "files_changed": changed_files,
        "media_files": len(large),
        "media_edits": n_large,
        "media_edits_resized": n_resized,
        "small_file_edits": n_small,
        "bytes_written": written,
        "bytes_replaced": removed,
        "changed_fraction": written / tree_bytes if tree_bytes else 0.0,
        "edit_size_range": [a.min_edit, a.max_edit],
        "seed": a.seed,
        "seconds": round(time.monotonic() - t0, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
