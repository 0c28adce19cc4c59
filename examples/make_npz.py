"""Write a dataset the way a user brings their own: an .npz of x_train, y_train, x_test, y_test
(uint8 images N x H x W, integer labels). Here: a subset of Fashion-MNIST from the Debian package.

    python examples/make_npz.py examples/fashion-small.npz [--train 12000] [--test 2000]
"""

import argparse

import numpy as np

from trainables.data import read_idx

ROOT = "/usr/share/datasets/fashion-mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--data-dir", default=ROOT)
    args = parser.parse_args()
    arrays = {}
    for split, stem, count in (("train", "train", args.train), ("test", "t10k", args.test)):
        images = read_idx(f"{args.data_dir}/{stem}-images-idx3-ubyte.gz")
        labels = read_idx(f"{args.data_dir}/{stem}-labels-idx1-ubyte.gz")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images[:count], labels[:count].astype(np.int64)
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: " + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
