"""A small convolutional network on scikit-learn's 8 x 8 digits, trained with optical DFA.

    python examples/dfa_digits_conv.py --mode optical --epochs 15

Two 3 x 3 convolutions (16 and 32 channels, tanh, 2 x 2 max-pool) with a DFA marker on each
feature map: the feedback of a sample is sliced to 16 x 8 x 8 and 32 x 4 x 4 values, one
random projection of the 10-class error per sample (tiled over several device calls if wider
than the camera allows).
"""

from __future__ import annotations

import argparse

import torch

from dfa_common import ConvNet, describe, digits, make_opu, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="optical", choices=["bp", "digital", "optical", "output"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    opu = make_opu(args.seed) if args.mode == "optical" else None
    model = ConvNet(side=8, mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train(model, digits(), epochs=args.epochs, seed=args.seed, log=print)))


if __name__ == "__main__":
    main()
