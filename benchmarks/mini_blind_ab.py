"""A blind A/B comparison: the mini model's default restoration against bicubic and against Real-ESRGAN, side by side
in a shuffled order, with the key in a separate file.

    python benchmarks/mini_yardstick.py --work-dir mini-build          # makes the restorations first
    python benchmarks/mini_blind_ab.py make --work-dir mini-build      # pairs/NN.png + key.json (do not open the key)
    python benchmarks/mini_blind_ab.py score --work-dir mini-build --picks L R L ...   # one pick per pair, in order
    python benchmarks/mini_blind_ab.py make --work-dir v3 --seed 1 --opponent "v2=v2-build/yardstick/mini"  # builds

Each pair shows two restorations of the same held-out crop (left and right, order drawn from a seeded generator)
with the ground truth below them for reference; the judge picks the better restoration. `score` reads the key and
reports how often the mini model was picked against each opponent. `--opponent NAME=FOLDER` adds the restorations in
FOLDER (same file names, e.g. another build's `yardstick/mini`) as an opponent; its name is kept in the key.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

OPPONENTS = {"bicubic": "bicubic", "Real-ESRGAN": "realesrgan"}


def make(work: Path, seed: int, opponents: dict[str, Path] | None = None) -> Path:
    from PIL import Image

    source = work / "yardstick"
    if not (source / "mini").is_dir():
        raise SystemExit(f"No restorations in {source}: run benchmarks/mini_yardstick.py --work-dir {work} first.")
    names = sorted(p.name for p in (source / "mini").glob("*.png"))
    folders = {name: source / folder for name, folder in OPPONENTS.items()} | (opponents or {})
    for opponent, folder in folders.items():
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise SystemExit(f"{opponent}: {folder} lacks {len(missing)} of the crops ({missing[0]}, ...).")
    trials = [(name, opponent) for opponent in folders for name in names]
    rng = random.Random(seed)
    rng.shuffle(trials)
    out = work / "blind_ab"
    if (out / "pairs").is_dir():
        shutil.rmtree(out / "pairs")  # no pair of an earlier draw left beside this one's
    (out / "pairs").mkdir(parents=True)
    key = []
    for index, (name, opponent) in enumerate(trials):
        mini_left = rng.random() < 0.5
        panels = [source / "mini" / name, folders[opponent] / name]
        if not mini_left:
            panels.reverse()
        images = [Image.open(p).convert("RGB") for p in panels]
        truth = Image.open(source.parent / "bench" / "hq" / name).convert("RGB")
        side = images[0].width
        sheet = Image.new("RGB", (2 * side, 2 * side), "white")
        sheet.paste(images[0], (0, 0))
        sheet.paste(images[1], (side, 0))
        sheet.paste(truth, (side // 2, side))
        sheet.save(out / "pairs" / f"{index:02d}.png")
        key.append({"pair": index, "crop": name, "opponent": opponent, "mini": "L" if mini_left else "R"})
    (out / "key.json").write_text(json.dumps(key, indent=1) + "\n")
    return out


def score(work: Path, picks: list[str]) -> dict[str, tuple[int, int]]:
    key = json.loads((work / "blind_ab" / "key.json").read_text())
    if len(picks) != len(key) or any(p not in ("L", "R") for p in picks):
        raise SystemExit(f"Give one pick (L or R) for each of the {len(key)} pairs, in order.")
    tally: dict[str, list[int]] = {entry["opponent"]: [0, 0] for entry in key}
    for entry, pick in zip(key, picks, strict=True):
        tally[entry["opponent"]][0] += pick == entry["mini"]
        tally[entry["opponent"]][1] += 1
    return {opponent: (won, total) for opponent, (won, total) in tally.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["make", "score"])
    parser.add_argument("--work-dir", default="mini-build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picks", nargs="*", default=[])
    parser.add_argument("--opponent", action="append", default=[], metavar="NAME=FOLDER", help="another opponent")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    opponents = {}
    for item in args.opponent:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--opponent {item!r}: give NAME=FOLDER, FOLDER a folder of restorations")
        opponents[name] = Path(folder)
    if args.action == "make":
        print(f"pairs in {make(work, args.seed, opponents) / 'pairs'}; the key is in key.json beside them")
        return 0
    for opponent, (won, total) in score(work, args.picks).items():
        print(f"mini picked over {opponent}: {won} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
