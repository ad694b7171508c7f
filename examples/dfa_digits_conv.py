"""A small convolutional network on scikit-learn's 8 x 8 digits, trained with optical DFA.

    python examples/dfa_digits_conv.py --mode optical --epochs 15

Two 3 x 3 convolutions (16 and 32 channels, tanh, 2 x 2 max-pool) with a DFA marker on each
feature map: the feedback of a sample is sliced to 16 x 8 x 8 and 32 x 4 x 4 values, one
random projection of the 10-class error per sample (tiled over several device calls if wider
than the camera allows).
"""

from __future__ import annotations

from dfa_common import ConvNet, describe, digits, example_setup, train


def main() -> None:
    args, opu = example_setup(__doc__, epochs=15)
    model = ConvNet(side=8, mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train(model, digits(), epochs=args.epochs, seed=args.seed, log=print)))


if __name__ == "__main__":
    main()
