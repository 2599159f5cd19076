#!/usr/bin/env python3
"""Generate a deterministic synthetic course tree for the publish benchmark.

Usage: gen-tree.py OUT_DIR [--size-gb N] [--seed S] [--pages N] [--media N]

The tree looks like one course of a remote-education catalogue:

    OUT_DIR/
      01-counting/
        index.html
        pages/p0001.html ...        small HTML pages, 1-20 KB, partly repetitive text
        img/logo.svg                identical in every lesson (whole-file duplicate)
        img/fig-0003.svg ...        small SVG figures
        notes/n0002.txt ...         plain-text notes
        style.css                   identical in every lesson
        video/lecture-01.mp4        (only some lessons) large incompressible media
      02-.../
      ...

Everything is derived from --seed (default 20240601): the same arguments give
byte-identical files (and fixed mtimes) on every machine and Python >= 3.9.
No os.urandom, no third-party packages.  Large files are written in 4 MiB blocks
of random.Random(seed).randbytes, so memory stays bounded (~10 MiB) and
generation runs at roughly disk/`randbytes` speed (~400 MB/s on one core).

The total size is approximately --size-gb GiB. Small files: --pages of them
(default 4000 at 2 GiB, about 30 MB; scaled down for smaller trees, at least 300)
plus index.html, style.css and img/logo.svg in each lesson. The rest of the budget
goes into --media large files of varied size (+/-25 % around the mean).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

BLOCK = 4 << 20  # large-file write block
FIXED_MTIME = 1_700_000_000  # 2023-11-14, so trees are identical incl. mtimes

LESSON_TOPICS = [
    "counting", "place-value", "addition", "subtraction", "multiplication",
    "division", "fractions", "decimals", "percentages", "ratios", "geometry",
    "angles", "area", "volume", "measurement", "time", "money", "data",
    "probability", "patterns", "algebra", "equations", "graphs", "review",
]

WORDS = (
    "the a of and to in is that for it as with on by this be are from or at "
    "number numbers fraction fractions half quarter third whole part parts equal "
    "add subtract multiply divide sum difference product quotient remainder "
    "shape circle square triangle rectangle angle line point area perimeter "
    "volume length width height measure metre litre gram hour minute second "
    "student teacher lesson exercise example answer question practice check "
    "think draw write count compare order estimate round explain show find "
    "village school river field market road house tree goat rice water bread "
    "mango basket bucket rope stone coin paper pencil board chalk book page "
    "first next then finally because so if when how many much more less than "
    "same different bigger smaller longest shortest heavier lighter together"
).split()

BOILERPLATE = [
    "This lesson works offline. Read each part slowly and try the exercises before "
    "looking at the answers at the end of the page.",
    "Teachers: the printable worksheet for this page is in the notes folder. "
    "Students may work in pairs when there are not enough devices.",
    "If a picture does not load, the text below it describes everything you need "
    "to solve the problem.",
    "Remember to write your working, not only the answer. Checking your answer "
    "with a different method is a good habit.",
]

CSS = """body{font-family:sans-serif;max-width:42em;margin:auto;padding:1em;line-height:1.5}
nav a{margin-right:1em}h1{font-size:1.6em}h2{font-size:1.25em}
.exercise{border-left:4px solid #3a7;padding-left:.8em;margin:1em 0}
.answer{color:#555;font-style:italic}figure{text-align:center}
footer{margin-top:3em;font-size:.85em;color:#666}
""" * 3

LOGO = """<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">
<circle cx="32" cy="32" r="30" fill="#3a7"/><path d="M14 40 L32 14 L50 40 Z" fill="#fff"/>
<text x="32" y="56" font-size="9" text-anchor="middle" fill="#fff">shanlu</text></svg>
"""


def sentence(rng: random.Random) -> str:
    n = rng.randint(6, 18)
    s = " ".join(rng.choice(WORDS) for _ in range(n))
    return s[0].upper() + s[1:] + rng.choice(".....?!")


def paragraph(rng: random.Random) -> str:
    # ~1 in 4 paragraphs is shared boilerplate: partly repetitive text.
    if rng.random() < 0.25:
        return rng.choice(BOILERPLATE)
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 7)))


def html_page(rng: random.Random, lesson: str, title: str, target: int) -> bytes:
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title} - {lesson}</title>\n"
        "<link rel=\"stylesheet\" href=\"../style.css\">\n</head>\n<body>\n"
        "<nav><a href=\"../index.html\">Lesson</a><a href=\"../../\">Course</a>"
        "<a href=\"#exercises\">Exercises</a></nav>\n"
        f"<h1>{title}</h1>\n"
    )
    foot = (
        "<footer>Shanlu remote education &middot; works without a connection &middot; "
        "share freely with your class.</footer>\n</body>\n</html>\n"
    )
    parts = [head]
    size = len(head) + len(foot)
    i = 0
    while size < target:
        i += 1
        if i % 4 == 0:
            p = (f"<div class=\"exercise\" id=\"ex{i}\"><p>{sentence(rng)}</p>"
                 f"<p class=\"answer\">Answer: {rng.randint(0, 999)}</p></div>\n")
        elif i % 7 == 0:
            p = f"<h2>{sentence(rng)[:-1]}</h2>\n"
        else:
            p = f"<p>{paragraph(rng)}</p>\n"
        parts.append(p)
        size += len(p)
    parts.append(foot)
    return "".join(parts).encode()


def svg_figure(rng: random.Random, target: int) -> bytes:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300" '
             'viewBox="0 0 400 300">\n']
    size = len(parts[0])
    while size < target:
        kind = rng.randrange(3)
        if kind == 0:
            e = (f'<rect x="{rng.randrange(380)}" y="{rng.randrange(280)}" '
                 f'width="{rng.randrange(5, 120)}" height="{rng.randrange(5, 90)}" '
                 f'fill="#{rng.randrange(1 << 24):06x}" stroke="#333"/>\n')
        elif kind == 1:
            e = (f'<circle cx="{rng.randrange(400)}" cy="{rng.randrange(300)}" '
                 f'r="{rng.randrange(3, 60)}" fill="#{rng.randrange(1 << 24):06x}"/>\n')
        else:
            e = (f'<text x="{rng.randrange(360)}" y="{rng.randrange(20, 300)}" '
                 f'font-size="14">{rng.choice(WORDS)} {rng.randint(1, 99)}</text>\n')
        parts.append(e)
        size += len(e)
    parts.append("</svg>\n")
    return "".join(parts).encode()


def text_note(rng: random.Random, target: int) -> bytes:
    parts: list[str] = []
    size = 0
    while size < target:
        p = paragraph(rng) + "\n\n"
        parts.append(p)
        size += len(p)
    return "".join(parts).encode()


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def write_random(path: str, seed: int, size: int) -> None:
    rng = random.Random(seed)
    left = size
    with open(path, "wb", buffering=0) as f:
        while left > 0:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output course folder (must not exist)")
    ap.add_argument("--size-gb", type=float, default=2.0,
                    help="approximate total size in GiB (default 2)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--pages", type=int, default=None,
                    help="number of small files (default: 4000 at 2 GiB, scaled "
                         "down for smaller trees, at least 300)")
    ap.add_argument("--media", type=int, default=5,
                    help="number of large media files (default 5)")
    ap.add_argument("--lessons", type=int, default=24)
    a = ap.parse_args()

    if not (0.01 <= a.size_gb <= 64):
        ap.error("--size-gb must be between 0.01 and 64")
    if not (1 <= a.lessons <= len(LESSON_TOPICS) * 10):
        ap.error("--lessons out of range")
    if a.media < 0 or a.media > 64:
        ap.error("--media must be 0..64")
    if os.path.exists(a.out):
        ap.error(f"{a.out} already exists")

    total = int(a.size_gb * (1 << 30))
    pages = a.pages if a.pages is not None else max(300, min(4000, int(4000 * a.size_gb / 2)))
    if not (0 <= pages <= 200_000):
        ap.error("--pages must be 0..200000")

    t0 = time.monotonic()
    master = random.Random(a.seed)
    lessons = [f"{i + 1:02d}-{LESSON_TOPICS[i % len(LESSON_TOPICS)]}"
               + (f"-{i // len(LESSON_TOPICS) + 1}" if i >= len(LESSON_TOPICS) else "")
               for i in range(a.lessons)]
    os.makedirs(a.out)
    small_bytes = 0
    for lesson in lessons:
        for sub in ("pages", "img", "notes"):
            os.makedirs(os.path.join(a.out, lesson, sub))
        write_file(os.path.join(a.out, lesson, "style.css"), CSS.encode())
        write_file(os.path.join(a.out, lesson, "img", "logo.svg"), LOGO.encode())
        rng = random.Random(master.getrandbits(64))
        title = lesson.split("-", 1)[1].replace("-", " ").title()
        index = html_page(rng, lesson, title, rng.randint(2_000, 8_000))
        write_file(os.path.join(a.out, lesson, "index.html"), index)
        small_bytes += len(CSS) + len(LOGO) + len(index)

    # Small files: 60 % HTML pages, 25 % SVG figures, 15 % text notes; 1-20 KB,
    # skewed towards the small end like real course material.
    for i in range(pages):
        rng = random.Random(master.getrandbits(64))
        lesson = lessons[rng.randrange(len(lessons))]
        target = int(1024 + 19 * 1024 * rng.random() ** 2)
        k = rng.random()
        if k < 0.60:
            path = os.path.join(a.out, lesson, "pages", f"p{i:05d}.html")
            data = html_page(rng, lesson, sentence(rng)[:-1], target)
        elif k < 0.85:
            path = os.path.join(a.out, lesson, "img", f"fig-{i:05d}.svg")
            data = svg_figure(rng, target)
        else:
            path = os.path.join(a.out, lesson, "notes", f"n{i:05d}.txt")
            data = text_note(rng, target)
        write_file(path, data)
        small_bytes += len(data)

    # Large media: the remaining budget, split into files of varied size.
    media_bytes = 0
    if a.media:
        budget = max(0, total - small_bytes)
        weights = [master.uniform(0.75, 1.25) for _ in range(a.media)]
        wsum = sum(weights)
        step = max(1, len(lessons) // a.media)
        for j, w in enumerate(weights):
            lesson = lessons[(j * step) % len(lessons)]
            vdir = os.path.join(a.out, lesson, "video")
            os.makedirs(vdir, exist_ok=True)
            size = int(budget * w / wsum)
            write_random(os.path.join(vdir, f"lecture-{j + 1:02d}.mp4"),
                         master.getrandbits(64), size)
            media_bytes += size

    for lesson in lessons:
        for root, dirs, _ in os.walk(os.path.join(a.out, lesson), topdown=False):
            os.utime(root, (FIXED_MTIME, FIXED_MTIME))
    os.utime(a.out, (FIXED_MTIME, FIXED_MTIME))

    files = pages + 3 * len(lessons) + a.media
    dt = time.monotonic() - t0
    print(f"gen-tree: {a.out}: {files} files ({pages} small pages, {a.media} media), "
          f"{len(lessons)} lessons, {(small_bytes + media_bytes) / 1e6:.1f} MB "
          f"(small {small_bytes / 1e6:.1f} MB) in {dt:.1f}s, seed {a.seed}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
