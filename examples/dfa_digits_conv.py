"""A small convolutional network on scikit-learn's 8 x 8 digits, trained with optical DFA.

    python examples/dfa_digits_conv.py --mode optical --epochs 15 [--before-pool]

Two 3 x 3 convolutions (16 and 32 channels, tanh, 2 x 2 max-pool) with a DFA marker on each
pooled feature map: the feedback of a sample is sliced to 16 x 4 x 4 and 32 x 2 x 2 values,
one random projection of the 10-class error per sample. ``--before-pool`` puts the markers
before the pools (16 x 8 x 8 and 32 x 4 x 4 values, tiled over several device calls if wider
than the camera allows), a placement that does no better than training the output layer
alone (``benchmarks/dfa.py --tasks conv``).
"""

from __future__ import annotations

from dfa_common import ConvNet, describe, digits, example_setup, train


def main() -> None:
    args, opu = example_setup(__doc__, epochs=15, **{"before-pool": {"action": "store_true",
                                                                     "help": "markers before the max-pools"}})
    model = ConvNet(side=8, after_pool=not args.before_pool, mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train(model, digits(), epochs=args.epochs, seed=args.seed, log=print)))


if __name__ == "__main__":
    main()
