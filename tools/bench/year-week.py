#!/usr/bin/env python3
"""One week of a course's life, for tools/bench/year.sh: edits, a new lesson, a deletion.

Usage: year-week.py TREE --week N [--fraction F] [--seed S]

Changes about F (default 0.03) of the course's bytes, in place, the way a
course team's week looks:

- half of F: one recorded lecture (a large media file, chosen by the week)
  has segments re-recorded: 64-256 KiB runs of fresh bytes at scattered
  offsets, the file's size unchanged;
- half of F: a new lesson folder `wNN-extra/` with an index page, two pages
  and one new video of that size;
- three HTML pages get a corrected sentence (same length);
- once three `wNN-extra/` lessons are there, the oldest is deleted each
  week, so the course keeps about its size over a year.

Deterministic: the same tree, week and seed give the same bytes (random.Random
only). Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random

LARGE = 1 << 20
RUN_MIN, RUN_MAX = 64 << 10, 256 << 10
FIXED_MTIME = 1_700_000_000


def files_of(tree: str) -> list[tuple[str, int]]:
    out = []
    for root, dirs, names in os.walk(tree):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            out.append((path, os.path.getsize(path)))
    return out


def touch(path: str, week: int) -> None:
    stamp = FIXED_MTIME + week * 7 * 86400
    os.utime(path, (stamp, stamp))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tree")
    ap.add_argument("--week", type=int, required=True)
    ap.add_argument("--fraction", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=20261130)
    a = ap.parse_args()
    if not 1 <= a.week <= 520:
        ap.error("--week must be 1..520")
    if not 0 < a.fraction <= 0.5:
        ap.error("--fraction must be in (0, 0.5]")
    rng = random.Random(a.seed * 1000 + a.week)
    files = files_of(a.tree)
    total = sum(size for _, size in files)
    budget = int(total * a.fraction / 2)

    # 1. Re-recorded segments of one lecture.
    media = [(p, s) for p, s in files
             if s >= LARGE and not os.path.relpath(p, a.tree).split(os.sep)[0].endswith("-extra")]
    media.sort()
    edited = 0
    lecture = None
    if media:
        lecture, size = media[a.week % len(media)]
        with open(lecture, "r+b") as f:
            while edited < budget and edited < size // 2:
                run = min(rng.randint(RUN_MIN, RUN_MAX), budget - edited)
                if run <= 0:
                    break
                f.seek(rng.randrange(0, max(1, size - run)))
                f.write(rng.randbytes(run))
                edited += run
        touch(lecture, a.week)

    # 2. A new lesson.
    lesson = os.path.join(a.tree, f"w{a.week:03d}-extra")
    os.makedirs(os.path.join(lesson, "video"), exist_ok=True)
    pages = [f"<html><body><h1>Week {a.week}</h1><p>{rng.random()}</p></body></html>\n".encode()
             for _ in range(3)]
    for name, data in zip(("index.html", "p1.html", "p2.html"), pages):
        with open(os.path.join(lesson, name), "wb") as f:
            f.write(data)
        touch(os.path.join(lesson, name), a.week)
    video = os.path.join(lesson, "video", "lecture.mp4")
    with open(video, "wb") as f:
        left = budget
        while left > 0:
            block = min(left, 4 << 20)
            f.write(rng.randbytes(block))
            left -= block
    touch(video, a.week)

    # 3. Corrected pages.
    html = sorted(p for p, s in files if p.endswith(".html") and s > 200)
    corrected = 0
    for path in rng.sample(html, min(3, len(html))):
        with open(path, "r+b") as f:
            data = f.read()
            at = rng.randrange(0, len(data) - 40)
            f.seek(at)
            f.write(f"[corrected in week {a.week:03d}]".encode().ljust(32, b"."))
        touch(path, a.week)
        corrected += 1

    # 4. The oldest extra lesson goes once there are more than three.
    deleted = None
    extras = sorted(d for d in os.listdir(a.tree) if d.startswith("w") and d.endswith("-extra"))
    if len(extras) > 3:
        deleted = extras[0]
        for root, dirs, names in os.walk(os.path.join(a.tree, deleted), topdown=False):
            for name in names:
                os.remove(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(os.path.join(a.tree, deleted))

    after = sum(size for _, size in files_of(a.tree))
    print(json.dumps({
        "week": a.week,
        "lecture_edited": os.path.relpath(lecture, a.tree) if lecture else None,
        "bytes_edited": edited,
        "new_lesson": os.path.basename(lesson),
        "new_bytes": budget + sum(len(p) for p in pages),
        "pages_corrected": corrected,
        "deleted_lesson": deleted,
        "tree_bytes": after,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
