"""Train a tanh MLP 40-256-256-10 on MNIST-1D (generated locally) with BP, digital or optical DFA.

    python examples/dfa_mnist1d.py --mode optical --epochs 20

The ``mnist1d`` package generates the 5,000 sequences (4,000 train / 1,000 test) from its
templates; nothing is downloaded. ``--mode output`` trains the output layer alone (the
baseline optical DFA must beat).
"""

from __future__ import annotations

from dfa_common import MLP, describe, example_setup, mnist1d, train


def main() -> None:
    args, opu = example_setup(__doc__, epochs=20)
    model = MLP([40, 256, 256, 10], mode=args.mode, opu=opu, seed=args.seed)
    # SGD with momentum, chosen on a validation split: with Adam the first layer's DFA alignment stays below 0.2
    print(describe(train(model, mnist1d(), epochs=args.epochs, lr=0.03, optimiser="sgd", seed=args.seed, log=print)))


if __name__ == "__main__":
    main()
