"""Fixed centres of the classic LeNet-5 RBF output layer: stylised 7×12 digit bitmaps.

LeCun et al. (1998) fix the 10×84 output weights by hand to ±1 images of the
digits on a 7×12 grid, so that confusable characters (O and 0, l and 1) get
centres far apart in F6's 84-dimensional space. We draw our own ten bitmaps
below: '#' is +1, '.' is −1. F6 uses a scaled tanh whose range is (−1.7159,
1.7159), so ±1 targets sit where the activation is steep, as in the paper.
"""

from __future__ import annotations

import numpy as np

# Each digit: 12 rows of 7 characters.
DIGIT_BITMAPS = {
    0: """
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..
""",
    1: """
...#...
..##...
.#.#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
.#####.
""",
    2: """
.#####.
#.....#
......#
......#
.....#.
....#..
...#...
..#....
.#.....
#......
#......
#######
""",
    3: """
.#####.
#.....#
......#
......#
......#
..####.
......#
......#
......#
......#
#.....#
.#####.
""",
    4: """
....##.
...#.#.
..#..#.
.#...#.
#....#.
#....#.
#######
.....#.
.....#.
.....#.
.....#.
.....#.
""",
    5: """
#######
#......
#......
#......
######.
......#
......#
......#
......#
......#
#.....#
.#####.
""",
    6: """
..####.
.#.....
#......
#......
######.
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
.#####.
""",
    7: """
#######
......#
.....#.
.....#.
....#..
....#..
...#...
...#...
..#....
..#....
..#....
..#....
""",
    8: """
.#####.
#.....#
#.....#
#.....#
.#...#.
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
.#####.
""",
    9: """
.#####.
#.....#
#.....#
#.....#
#.....#
.######
......#
......#
......#
......#
.....#.
.####..
""",
}

BITMAP_HEIGHT, BITMAP_WIDTH = 12, 7


def digit_centres() -> np.ndarray:
    """The (10, 84) array of ±1 centres, digit d in row d, bitmap rows concatenated."""
    centres = np.empty((10, BITMAP_HEIGHT * BITMAP_WIDTH), dtype=np.float64)
    for digit, drawing in DIGIT_BITMAPS.items():
        rows = drawing.strip().splitlines()
        assert len(rows) == BITMAP_HEIGHT and all(len(r) == BITMAP_WIDTH for r in rows), digit
        centres[digit] = [1.0 if ch == "#" else -1.0 for ch in "".join(rows)]
    return centres
